"""Shutdown: the first signal drains for up to settings.timeout; a second one exits at once."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import free_port, wait_http
from wireway.runtime.outbox import SqliteStore


def test_second_signal_exits_at_once(tmp_path: Path) -> None:
    """With an output whose peer takes the request and never answers, SIGTERM waits
    (drain), a second SIGTERM ends it; the undelivered message is still in the buffer for
    the next start. (A peer that refuses connections is not waited for at shutdown.)"""
    port, dead = free_port(), free_port()
    silent = socket.socket()  # connections complete in its backlog; nothing answers
    silent.bind(("127.0.0.1", dead))
    silent.listen(16)
    (tmp_path / "p.yaml").write_text(f"""
pattern: {{name: stuck}}
interfaces:
  input:
    - {{type: http, address: /in}}
  output:
    - {{type: http_client, address: "http://127.0.0.1:{dead}/x", timeout: 1}}
settings: {{timeout: 60, retries: 1000, backoff_base: 0.05, backoff_max: 0.1}}
""")
    cmd = [
        sys.executable,
        "-m",
        "wireway",
        "run",
        str(tmp_path / "p.yaml"),
        "--data-dir",
        str(tmp_path / "data"),
        "--http",
        f"127.0.0.1:{port}",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health")
    assert httpx.post(url + "/in", json={"n": 1}, trust_env=False).status_code == 202
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert proc.poll() is None, "the first signal should wait for the drain"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(10)
    assert time.monotonic() - t0 < 5
    assert code != 0
    assert proc.stderr is not None
    assert b"second signal" in proc.stderr.read()

    async def pending() -> int:
        store = SqliteStore(tmp_path / "data" / "buffer.db")
        await store.open()
        try:
            return len(store.pending())
        finally:
            await store.close()

    assert asyncio.run(pending()) == 1
    silent.close()


def test_a_peer_that_is_away_is_not_waited_for_at_shutdown(tmp_path: Path) -> None:
    """SIGTERM with an output whose peer refuses connections exits at once (exit 0); the
    message stays in the buffer for the next start."""
    port, dead = free_port(), free_port()
    (tmp_path / "p.yaml").write_text(f"""
pattern: {{name: away}}
interfaces:
  input:
    - {{type: http, address: /in}}
  output:
    - {{type: http_client, address: "http://127.0.0.1:{dead}/x", timeout: 1}}
settings: {{timeout: 60, backoff_base: 0.05, backoff_max: 0.1}}
""")
    cmd = [sys.executable, "-m", "wireway", "run", str(tmp_path / "p.yaml")]
    cmd += ["--data-dir", str(tmp_path / "data"), "--http", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health")
    assert httpx.post(url + "/in", json={"n": 1}, trust_env=False).status_code == 202
    time.sleep(0.5)  # a first delivery attempt finds the peer away
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert time.monotonic() - t0 < 10

    async def pending() -> int:
        store = SqliteStore(tmp_path / "data" / "buffer.db")
        await store.open()
        try:
            return len(store.pending())
        finally:
            await store.close()

    assert asyncio.run(pending()) == 1
