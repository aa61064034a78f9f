"""`wireway run` keeps the built-in application's MQTT input on while no broker answers:
it reconnects with backoff, /health says degraded (mqtt: down) and HTTP ingestion goes
on. Only the demo (`--simulate`, what `make run` starts) leaves MQTT out when no broker
answers on the default address."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from conftest import free_port

ADMIN = "run-mqtt-admin-key"
READING = {
    "device_id": "esp32-mqtt-down",
    "timestamp": "2025-10-16T18:33:58Z",
    "sensors": {"pir": {"motion_detected": True}},
}


def closed_port() -> int:
    """A port nothing listens on (free_port's socket is closed again)."""
    port: int = free_port()
    return port


def start(tmp: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WIREWAY_")}
    full_env.update({"WIREWAY_ADMIN_KEY": ADMIN, **(env or {})})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wireway",
            "run",
            "--data-dir",
            str(tmp / "data"),
            "--http",
            f"127.0.0.1:{port}",
            *extra,
        ],
        cwd=tmp,
        env=full_env,
        stdout=open(tmp / "out.txt", "wb"),  # noqa: SIM115  (the child owns it)
        stderr=subprocess.STDOUT,
    )
    return proc, f"http://127.0.0.1:{port}"


def health(proc: subprocess.Popen[bytes], url: str, tmp: Path, timeout: float = 30.0) -> dict[str, Any]:
    """The first /health answer (the process must keep running until then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"wireway run exited ({proc.returncode}):\n{(tmp / 'out.txt').read_text()}")
        try:
            response = httpx.get(url + "/health", timeout=2, trust_env=False)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body
    pytest.fail(f"/health did not answer in {timeout}s:\n{(tmp / 'out.txt').read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def assert_degraded_and_ingesting(proc: subprocess.Popen[bytes], url: str, tmp: Path) -> None:
    body = health(proc, url, tmp)
    assert body["status"] == "degraded", body
    assert body["services"]["mqtt"] == "down", body
    response = httpx.post(
        url + "/api/v1/sensor-data", json=READING, headers={"X-API-Key": ADMIN}, trust_env=False, timeout=10
    )
    assert response.status_code == 202, response.text
    # still running and still reporting the broker down a moment later (reconnecting)
    time.sleep(1.5)
    assert proc.poll() is None
    again = httpx.get(url + "/health", timeout=2, trust_env=False).json()
    assert again["services"]["mqtt"] == "down"


@pytest.mark.parametrize("how", ["option", "env"])
def test_run_with_broker_down_reports_degraded_and_ingests_http(tmp_path: Path, how: str) -> None:
    """--mqtt (or WIREWAY_MQTT_URL) at a closed port: the input stays on and reconnects."""
    broker = f"mqtt://127.0.0.1:{closed_port()}"
    if how == "option":
        proc, url = start(tmp_path, "--mqtt", broker)
    else:
        proc, url = start(tmp_path, env={"WIREWAY_MQTT_URL": broker})
    try:
        assert_degraded_and_ingesting(proc, url, tmp_path)
    finally:
        assert stop(proc) == 0
    out = (tmp_path / "out.txt").read_text()
    assert "MQTT input" not in out  # no "runs without the MQTT input" notice


# ----- which runs leave MQTT out: in process, with the broker probe answering "no" -----


def mqtt_inputs(patterns: list[Any]) -> list[str]:
    return [i.type for p in patterns for i in p.inputs if i.type == "mqtt"]


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`wireway run` in process: no broker answers, serve() only records its patterns."""
    import wireway.cli.main as cli
    import wireway.observability.logging as log
    import wireway.runtime.serve as running

    saved = dict(os.environ)  # run() sets WIREWAY_* variables: none may leak into later tests
    for key in list(os.environ):
        if key.startswith("WIREWAY_"):
            del os.environ[key]
    monkeypatch.chdir(tmp_path)  # no ./patterns or ./wireway.yaml: the built-in app
    probes: list[tuple[str, int]] = []

    def answers(host: str = "127.0.0.1", port: int = 1883) -> bool:
        probes.append((host, port))
        return False

    seen: dict[str, Any] = {"probes": probes}

    async def serve(patterns: list[Any], **kwargs: Any) -> None:
        seen["patterns"] = patterns
        seen["kwargs"] = kwargs

    monkeypatch.setattr(cli, "broker_answers", answers)
    monkeypatch.setattr(running, "serve", serve)
    monkeypatch.setattr(log, "setup", lambda *args: None)  # keep the suite's logging as it is
    try:
        yield seen
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_plain_run_keeps_mqtt_on_without_a_broker(no_broker: dict[str, Any], tmp_path: Path) -> None:
    """Plain `wireway run` (no --mqtt, default broker URL, nothing answering) keeps the
    MQTT input: it is not even probed for."""
    from wireway.cli.main import app

    result = CliRunner().invoke(app, ["run", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert mqtt_inputs(no_broker["patterns"]) == ["mqtt"]
    assert "MQTT input" not in result.output
    assert no_broker["probes"] == []


def test_demo_without_a_broker_leaves_mqtt_out(no_broker: dict[str, Any], tmp_path: Path) -> None:
    """`wireway run --simulate N` (what `make run` starts) with no broker on 127.0.0.1:1883
    runs without the MQTT input and says so."""
    from wireway.cli.main import app

    result = CliRunner().invoke(app, ["run", "--simulate", "3", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert mqtt_inputs(no_broker["patterns"]) == []
    assert "no MQTT broker answers at 127.0.0.1:1883" in result.output
    assert no_broker["probes"] == [("127.0.0.1", 1883)]
    demo = no_broker["kwargs"]["alongside"]  # the demo devices start beside the engine
    assert demo.keywords == {"devices": 3}


def test_demo_with_a_broker_url_keeps_mqtt(no_broker: dict[str, Any], tmp_path: Path) -> None:
    """The demo with --mqtt URL keeps the input, reachable or not (no probe)."""
    from wireway.cli.main import app

    args = ["run", "--simulate", "3", "--mqtt", f"mqtt://127.0.0.1:{closed_port()}"]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert mqtt_inputs(no_broker["patterns"]) == ["mqtt"]
    assert no_broker["probes"] == []
