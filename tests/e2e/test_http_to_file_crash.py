"""At-least-once through the real CLI: http in -> durable buffer -> file out, killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from conftest import free_port, wait_http

TOTAL = 20_000
PER_REQUEST = 10
WORKERS = 4

PATTERN = """
pattern: {{name: crash, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - {{type: file, address: "{out}", format: jsonl, payload_only: true}}
settings: {{buffer: durable, buffer_size: 100000, batch_size: 200, timeout: 20}}
"""


class Instance:
    """`wireway run` as a subprocess."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.out = tmp / "out.jsonl"
        (tmp / "p.yaml").write_text(PATTERN.format(out=self.out))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wireway",
                "run",
                str(self.tmp / "p.yaml"),
                "--data-dir",
                str(self.tmp / "data"),
                "--http",
                f"127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "log.txt", "ab"),  # noqa: SIM115
        )
        wait_http(f"http://127.0.0.1:{self.port}/health")

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def seqs(self) -> Counter[int]:
        if not self.out.exists():
            return Counter()
        lines = self.out.read_bytes().splitlines()
        return Counter(json.loads(line)["seq"] for line in lines if line.strip())


def post_all(port: int, stop_after: int, on_half: threading.Event) -> set[int]:
    """POST numbered messages from several threads; returns the seqs answered 202."""
    acked: set[int] = set()
    lock = threading.Lock()
    chunks = [list(range(i, min(i + PER_REQUEST, TOTAL))) for i in range(0, TOTAL, PER_REQUEST)]
    it = iter(chunks)
    deadline = time.monotonic() + 120

    def worker() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as c:
            for chunk in it:
                if time.monotonic() > deadline:
                    return
                try:
                    r = c.post("/ingest", json=[{"seq": s, "pad": "x" * 40} for s in chunk])
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 202:
                    assert r.json()["accepted"] == len(chunk)
                    with lock:
                        acked.update(chunk)
                        if len(acked) >= stop_after:
                            on_half.set()

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(130)
    return acked


def wait_for(inst: Instance, wanted: set[int], timeout: float = 60) -> Counter[int]:
    deadline = time.monotonic() + timeout
    seen = inst.seqs()
    while not wanted <= set(seen) and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = inst.seqs()
    return seen


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_every_acknowledged_message_arrives(tmp_path: Path, sig: int) -> None:
    """Every message answered 202 before the signal is in the output after a restart.

    SIGKILL may cause duplicates (at-least-once); SIGTERM drains, so none.
    """
    inst = Instance(tmp_path)
    inst.start()
    half = threading.Event()
    result: dict[str, set[int]] = {}
    poster = threading.Thread(target=lambda: result.update(acked=post_all(inst.port, TOTAL // 2, half)))
    poster.start()
    assert half.wait(120), "the server never acknowledged half of the messages"
    code = inst.signal(sig)
    poster.join(130)
    acked = result["acked"]
    assert TOTAL // 2 <= len(acked) < TOTAL, "the signal should land mid-run"
    if sig == signal.SIGTERM:
        assert code == 0
        log = (tmp_path / "log.txt").read_text()
        assert "wireway stopped" in log
    inst.start()
    try:
        seen = wait_for(inst, acked)
    finally:
        assert inst.signal(signal.SIGTERM) == 0
    missing = acked - set(seen)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
    if sig == signal.SIGTERM:
        dupes = [s for s, n in seen.items() if n > 1]
        assert not dupes, f"{len(dupes)} duplicates after a graceful stop"
    assert os.path.exists(tmp_path / "data" / "buffer.db")
