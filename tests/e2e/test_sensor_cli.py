"""The sensor application through the real CLI: run with simulated devices, keys, init, simulate."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import free_port, wait_http, wireway

ADMIN = "cli-admin-key"


def start(
    tmp: Path, *extra: str, admin: str | None = ADMIN, out: str = "out.txt"
) -> tuple[subprocess.Popen[bytes], str]:
    """`wireway run` (MQTT off) in `tmp`, its console in `tmp/out`; waits for /health."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("WIREWAY_CONFIG", "WIREWAY_ADMIN_KEY")}
    if admin:
        env["WIREWAY_ADMIN_KEY"] = admin
    command = [sys.executable, "-m", "wireway", "run", "--no-mqtt", "--data-dir", str(tmp / "data")]
    proc = subprocess.Popen(
        [*command, "--http", f"127.0.0.1:{port}", *extra],
        cwd=tmp,
        env=env,
        stdout=open(tmp / out, "wb"),  # noqa: SIM115  (the child owns it)
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health")
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_run_with_simulated_devices(tmp_path: Path) -> None:
    """`wireway run --simulate 5` (what `make run` does) fills the device registry and
    prints where to look; SIGTERM stops it cleanly."""
    proc, url = start(tmp_path, "--simulate", "5")
    try:
        headers = {"X-API-Key": ADMIN}
        deadline = time.monotonic() + 20
        devices: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(devices) < 5:
            devices = httpx.get(url + "/api/v1/devices", headers=headers, trust_env=False).json()["devices"]
            time.sleep(0.3)
        assert {d["device_id"] for d in devices} == {f"sim-{i:04d}" for i in range(5)}
    finally:
        assert stop(proc) == 0
    out = (tmp_path / "out.txt").read_text()
    assert "wireway is running. Look at:" in out
    assert "/api/v1/devices" in out
    with sqlite3.connect(tmp_path / "data" / "wireway.db") as conn:  # the readings
        assert conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0] > 0
    assert not (tmp_path / "data" / "sensors.db").exists()


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    """Keys made by the CLI work against a running instance and stop working once revoked."""
    d = ["--data-dir", str(tmp_path / "data")]
    proc, url = start(tmp_path)
    try:
        created = wireway("keys", "create", "--device", "esp32-007", *d)
        assert created.returncode == 0, created.stderr
        key = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("key:"))
        key_id = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("key id:"))
        reading = {
            "device_id": "esp32-007",
            "timestamp": "2025-10-16T18:33:58Z",
            "sensors": {"pir": {"motion_detected": True}},
        }
        deadline = time.monotonic() + 5
        status = 0
        while time.monotonic() < deadline and status != 202:
            status = httpx.post(
                url + "/api/v1/sensor-data", json=reading, headers={"X-API-Key": key}, trust_env=False
            ).status_code
            time.sleep(0.2)
        assert status == 202
        listed = wireway("keys", "list", *d, env={"COLUMNS": "200"})
        assert key_id in listed.stdout
        assert key not in listed.stdout
        assert wireway("keys", "revoke", key_id, *d).returncode == 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and status != 401:
            reading["timestamp"] = f"2025-10-16T18:34:{int(time.monotonic() * 10) % 60:02d}Z"
            status = httpx.post(
                url + "/api/v1/sensor-data", json=reading, headers={"X-API-Key": key}, trust_env=False
            ).status_code
            time.sleep(0.2)
        assert status == 401
    finally:
        stop(proc)


def test_init_copies_the_pattern_and_it_checks(tmp_path: Path) -> None:
    """`wireway init DIR` writes the built-in pattern files; `wireway check DIR` accepts them."""
    result = wireway("init", str(tmp_path / "patterns"))
    assert result.returncode == 0
    assert (tmp_path / "patterns" / "sensors.yaml").exists()
    checked = wireway("check", str(tmp_path / "patterns"))
    assert checked.returncode == 0, checked.stderr
    assert "pattern sensors (message-bus)" in checked.stdout


def test_simulate_over_http(tmp_path: Path) -> None:
    """`wireway simulate --via http` posts readings and prints a summary table."""
    proc, url = start(tmp_path)
    try:
        result = wireway(
            "simulate",
            "--devices",
            "3",
            "--rate",
            "50",
            "--duration",
            "1",
            "--via",
            "http",
            "--url",
            url,
            "--api-key",
            ADMIN,
            "--malformed",
            "0",
            "--anomalies",
            "0",
            env={"COLUMNS": "200"},
        )
        assert result.returncode == 0, result.stderr
        assert "answer: 202" in result.stdout
        assert "made: normal" in result.stdout
    finally:
        stop(proc)


def test_per_device_metrics_when_asked(tmp_path: Path) -> None:
    """`monitoring: {metrics: {per_device: true}}` adds a device_id label (off by default)."""
    assert wireway("init", str(tmp_path / "patterns")).returncode == 0
    path = tmp_path / "patterns" / "sensors.yaml"
    path.write_text(path.read_text().replace("per_device: false", "per_device: true"))
    proc, url = start(tmp_path, str(tmp_path / "patterns"))
    try:
        reading = {
            "device_id": "esp32-123",
            "timestamp": "2025-10-16T18:33:58Z",
            "sensors": {"pir": {"motion_detected": True}},
        }
        r = httpx.post(
            url + "/api/v1/sensor-data", json=reading, headers={"X-API-Key": ADMIN}, trust_env=False
        )
        assert r.status_code == 202
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline and "esp32-123" not in text:
            text = httpx.get(url + "/metrics", trust_env=False).text
            time.sleep(0.2)
        assert 'sensor_data_ingested_total{device_id="esp32-123",sensor_type="pir"} 1.0' in text
    finally:
        stop(proc)


def test_first_start_prints_the_admin_key_once(tmp_path: Path) -> None:
    """Without WIREWAY_ADMIN_KEY the first start prints a new admin key on the console,
    never in the JSON log; it works; a second start prints nothing and keeps it."""
    proc, _ = start(tmp_path, "--log-format", "json", admin=None, out="first.txt")
    stop(proc)
    first = (tmp_path / "first.txt").read_text()
    line = next(x for x in first.splitlines() if "admin API key (shown once)" in x)
    key = line.split()[-1]
    assert key.startswith("ww_admin_")
    json_lines = [x for x in first.splitlines() if x.startswith("{")]
    assert json_lines
    assert all(key not in x for x in json_lines)
    proc, url = start(tmp_path, admin=None, out="second.txt")
    try:
        r = httpx.get(url + "/api/v1/devices", headers={"X-API-Key": key}, trust_env=False)
        assert r.status_code == 200
    finally:
        stop(proc)
    assert "admin API key" not in (tmp_path / "second.txt").read_text()
