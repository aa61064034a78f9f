"""`wireway run` with a redis input, SIGKILLed while it reads: the next start takes up
what the crash left in the processing list or pending, so nothing is lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis

from conftest import free_port, need_service, wait_http

COUNT = 3000
PATTERN = """
pattern: {{name: crash}}
interfaces:
  input:
    - {{type: redis, mode: {mode}, key: {key}, start_id: "0", batch_size: 50}}
  output:
    - {{type: file, address: '{out}', payload_only: true}}
"""


def start(tmp: Path) -> subprocess.Popen[bytes]:
    port = free_port()
    command = [sys.executable, "-m", "wireway", "run", str(tmp / "p.yaml")]
    proc = subprocess.Popen(
        [*command, "--data-dir", str(tmp / "data"), "--http", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "log.txt", "ab"),  # noqa: SIM115
    )
    wait_http(f"http://127.0.0.1:{port}/health")
    return proc


def seen(out: Path) -> Counter[int]:
    if not out.exists():
        return Counter()
    return Counter(json.loads(line)["n"] for line in out.read_text().splitlines() if line.endswith("}"))


def wait_until(check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout}s")


@pytest.mark.parametrize("mode", ["list", "streams"])
def test_sigkill_mid_read_loses_nothing(mode: str, tmp_path: Path) -> None:
    """3,000 items; SIGKILL once a few hundred are out; after the restart every item is
    out and the processing list is empty / nothing is pending."""
    need_service("redis", 6379)
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    key, out = f"wwtest-crash-{mode}-{uuid.uuid4().hex[:8]}", tmp_path / "out.jsonl"
    (tmp_path / "p.yaml").write_text(PATTERN.format(mode=mode, key=key, out=out))
    items = [json.dumps({"n": i}) for i in range(COUNT)]
    if mode == "list":
        client.lpush(key, *items)
    else:
        pipe = client.pipeline(transaction=False)
        for item in items:
            pipe.xadd(key, {"data": item})
        pipe.execute()
    proc = start(tmp_path)
    try:
        wait_until(lambda: sum(seen(out).values()) >= 300)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc = start(tmp_path)
        wait_until(lambda: set(seen(out)) == set(range(COUNT)))
        if mode == "list":
            wait_until(lambda: client.llen(f"{key}:processing") == 0 and client.llen(key) == 0)
        else:
            wait_until(lambda: client.xpending(key, "wireway")["pending"] == 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        client.delete(key, f"{key}:processing")
        client.close()
