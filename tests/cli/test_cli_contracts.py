"""`wireway keys` with --storage, `wireway simulate --via mqtt`, and what `wireway run` picks
and listens on (issue 3, §2 keys, §9), through the real CLI as subprocesses."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import free_port, need_service, wait_http, wireway

PG = "postgresql://postgres@127.0.0.1:5432/test"
ADMIN = "cli-contract-admin-key"
# settings `run` reads from the environment; each test sets the ones it means
RUN_ENV = (
    "WIREWAY_CONFIG",
    "WIREWAY_HTTP",
    "WIREWAY_STORAGE",
    "WIREWAY_DATA_DIR",
    "WIREWAY_ADMIN_KEY",
    "WIREWAY_MQTT_URL",
    "WIREWAY_MQTT_ENABLED",
    "WIREWAY_AUTH",
)


def field(output: str, name: str) -> str:
    """The value of a `name: value` line of the CLI's output."""
    return next(line.split()[-1] for line in output.splitlines() if line.startswith(f"{name}:"))


# ----- keys --storage ---------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A storage URL of each kind: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/keys/store.db"  # sqlite:////abs/path
        return
    need_service("postgresql", 5432)
    schema = f"ww_{uuid.uuid4().hex[:10]}"
    pg(f"CREATE SCHEMA {schema}")
    monkeypatch.setenv("WIREWAY_SCHEMA", schema)  # the app's own tables in this schema too
    try:
        yield f"{PG}?search_path={schema}"
    finally:
        pg(f"DROP SCHEMA {schema} CASCADE")


def pg(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def stored_keys(url: str) -> list[dict[str, Any]]:
    """The api_keys rows, read straight from the database."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM wireway_api_keys")]
    import asyncpg

    async def fetch() -> list[dict[str, Any]]:
        base, schema = url.split("?search_path=")
        conn = await asyncpg.connect(base, server_settings={"search_path": schema})
        try:
            return [dict(r) for r in await conn.fetch("SELECT * FROM api_keys")]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_keys_create_list_revoke_with_storage(tmp_path: Path, storage: str) -> None:
    """`keys create --device ID`, `keys list` and `keys revoke KEY_ID` take --storage as
    `run` does: the key lives (hashed) in that database, and nothing under ./data."""
    s = ["--storage", storage]
    created = wireway("keys", "create", "--device", "esp32-cli", *s, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    key, key_id = field(created.stdout, "key"), field(created.stdout, "key id")
    assert field(created.stdout, "device") == "esp32-cli"
    assert key.startswith(f"ww_{key_id}_")
    rows = stored_keys(storage)
    (row,) = [r for r in rows if r["key_id"] == key_id]
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["device_id"] == "esp32-cli"
    assert row["role"] == "device"
    assert row["revoked_at"] is None
    assert all(key not in json.dumps(r, default=str) for r in rows)
    assert not (tmp_path / "data").exists()

    listed = wireway("keys", "list", *s, cwd=tmp_path, env={"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if key_id in x)
    assert "device" in line
    assert "esp32-cli" in line
    assert key not in listed.stdout

    revoked = wireway("keys", "revoke", key_id, *s, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked {key_id}" in revoked.stdout
    (row,) = [r for r in stored_keys(storage) if r["key_id"] == key_id]
    assert row["revoked_at"] is not None
    again = wireway("keys", "revoke", key_id, *s, cwd=tmp_path)
    assert again.returncode == 1
    assert f"no active key {key_id}" in again.stderr


# ----- simulate --via mqtt ----------------------------------------------------------------
def test_simulate_over_mqtt(tmp_path: Path) -> None:
    """`wireway simulate --via mqtt --prefix P` publishes its readings at QoS 1 under
    P/sensors/<device>/data and prints a closing summary."""
    import paho.mqtt.client as mqtt

    need_service("mosquitto", 1883)
    devices = {f"sim-{i:04d}" for i in range(3)}
    prefix = f"t-sim-{uuid.uuid4().hex[:8]}"  # neither ours nor any running instance's topics
    received: list[tuple[str, Any]] = []
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        with lock:
            received.append((msg.topic, msg.payload))

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cli-sim-sub-{uuid.uuid4().hex[:8]}")
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", 1883)
    sub.loop_start()
    try:
        sub.subscribe([(f"{prefix}/sensors/{d}/data", 1) for d in sorted(devices)])
        assert subscribed.wait(5), "no SUBACK"
        result = wireway(
            "simulate",
            *("--devices", "3", "--rate", "30", "--duration", "1"),
            *("--via", "mqtt", "--mqtt", "mqtt://127.0.0.1:1883", "--prefix", prefix),
            *("--anomalies", "0", "--malformed", "0"),
            env={"COLUMNS": "200"},
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(received) < 30:
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    out = result.stdout
    assert "simulated 30 readings from 3 devices" in " ".join(out.split())  # a wrapped title
    cells = [[c.strip() for c in line.split("│")[1:3]] for line in out.splitlines() if line.startswith("│")]
    summary = {what: count for what, count in cells if what.startswith(("made:", "answer:"))}
    assert summary == {"made: normal": "30", "answer: acked": "30"}, out
    with lock:
        got = list(received)
    assert len(got) == 30
    readings = [json.loads(payload) for _, payload in got]
    for (topic, _), body in zip(got, readings, strict=True):
        assert topic == f"{prefix}/sensors/{body['device_id']}/data"
    assert {r["device_id"] for r in readings} == devices
    assert all(set(r["sensors"]) == {"ld2410", "pir", "mq134"} for r in readings)
    assert len({(r["device_id"], r["timestamp"]) for r in readings}) >= 30


# ----- run: which patterns, which address, which storage -------------------------------------
def trivial_pattern(name: str, out: Path) -> str:
    return (
        f"pattern: {{name: {name}, type: port-mapping, version: '1.0'}}\n"
        "interfaces:\n"
        "  input:\n"
        f"    - {{type: http, address: /ingest/{name}}}\n"
        "  output:\n"
        f"    - {{type: file, address: '{out}/{name}.jsonl', format: jsonl}}\n"
        "security: {authentication: none}\n"
    )


@contextmanager
def running(
    cwd: Path, *args: str, port: int, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m wireway run ARGS` in `cwd` until /health answers on `port`; always stopped."""
    full = {k: v for k, v in os.environ.items() if k not in RUN_ENV}
    full.update(env or {})
    log = open(cwd / f"run-{port}.log", "wb")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wireway", "run", *args],
        cwd=cwd,
        env=full,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(url + "/health", timeout=20)
        except TimeoutError:
            raise AssertionError((cwd / f"run-{port}.log").read_text()[-3000:]) from None
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()


def running_patterns(url: str) -> list[tuple[str, str]]:
    status = httpx.get(url + "/status", timeout=5, trust_env=False).json()
    return [(p["name"], Path(p["file"]).name) for p in status["patterns"]]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory holding ./wireway.yaml, ./patterns/ and a pattern elsewhere."""
    out = tmp_path / "out"
    (tmp_path / "wireway.yaml").write_text(trivial_pattern("from-yaml", out))
    (tmp_path / "patterns").mkdir()
    (tmp_path / "patterns" / "dir.yaml").write_text(trivial_pattern("from-dir", out))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "env.yaml").write_text(trivial_pattern("from-env", out))
    return tmp_path


def test_run_picks_wireway_config_first(workdir: Path) -> None:
    """$WIREWAY_CONFIG wins over ./wireway.yaml and ./patterns/; WIREWAY_HTTP sets the address."""
    port = free_port()
    env = {
        "WIREWAY_CONFIG": str(workdir / "elsewhere" / "env.yaml"),
        "WIREWAY_HTTP": f"127.0.0.1:{port}",
    }
    with running(workdir, "--data-dir", str(workdir / "data"), port=port, env=env) as (url, _):
        assert running_patterns(url) == [("from-env", "env.yaml")]
        r = httpx.post(url + "/ingest/from-env", json={"n": 1}, timeout=5, trust_env=False)
        assert r.status_code == 202, r.text


def test_run_picks_wireway_yaml_then_patterns(workdir: Path) -> None:
    """Without $WIREWAY_CONFIG: ./wireway.yaml, else ./patterns/; --http wins over WIREWAY_HTTP."""
    port, other = free_port(), free_port()
    env = {"WIREWAY_HTTP": f"127.0.0.1:{other}"}
    args = ("--data-dir", str(workdir / "data"), "--http", f"127.0.0.1:{port}")
    with running(workdir, *args, port=port, env=env) as (url, _):
        assert running_patterns(url) == [("from-yaml", "wireway.yaml")]
        assert refused(other), "WIREWAY_HTTP was used although --http was given"
    (workdir / "wireway.yaml").unlink()
    port = free_port()
    args = ("--data-dir", str(workdir / "data"), "--http", f"127.0.0.1:{port}")
    with running(workdir, *args, port=port) as (url, _):
        assert running_patterns(url) == [("from-dir", "dir.yaml")]


def test_run_builtin_app_with_storage_and_http(tmp_path: Path) -> None:
    """With none of those: the built-in application; --storage (a path relative to the working
    directory) is where readings and keys go, --http where it listens."""
    url_storage = "sqlite:///store/readings.db"
    created = wireway("keys", "create", "--device", "esp32-run", "--storage", url_storage, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    device_key = field(created.stdout, "key")
    port = free_port()
    args = (
        *("--no-mqtt", "--data-dir", str(tmp_path / "data")),
        *("--storage", url_storage, "--http", f"127.0.0.1:{port}"),
    )
    with running(tmp_path, *args, port=port, env={"WIREWAY_ADMIN_KEY": ADMIN}) as (url, _):
        assert [name for name, _ in running_patterns(url)] == ["sensors"]
        reading = {
            "device_id": "esp32-run",
            "timestamp": "2025-10-16T18:33:58Z",
            "sensors": {"pir": {"motion_detected": True}},
        }
        r = httpx.post(
            url + "/api/v1/sensor-data", json=reading, headers={"X-API-Key": device_key}, trust_env=False
        )
        assert r.status_code == 202, r.text  # the key made with the same --storage
        db = tmp_path / "store" / "readings.db"
        deadline = time.monotonic() + 10
        rows: list[tuple[str, str]] = []
        while time.monotonic() < deadline and not rows:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT device_id, sensor_type FROM sensor_readings").fetchall()
            time.sleep(0.1)
        assert rows == [("esp32-run", "pir")]
        health = httpx.get(url + "/health", trust_env=False).json()
        assert health["services"]["storage"] == "up"
    assert not (tmp_path / "data" / "wireway.db").exists()  # --storage was taken
