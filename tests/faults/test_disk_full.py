"""The data directory's disk fills up under a real `wireway run`: inputs push back, nothing is lost.

The test mounts a small tmpfs for the data directory (it needs root, or a system that
lets it mount; otherwise it is skipped, and fails under CI=true), fills it with a
file, and posts readings over HTTP: they are answered 503 with Retry-After, `/ready`
names the buffer, the log says so once. Deleting the file frees the disk: ingestion
resumes by itself, and every reading answered 202 reaches the output (a file outside
the tmpfs).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fault_harness import record

from conftest import free_port, wait_http

PATTERN = """
pattern: {{name: full, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - {{type: file, address: "{out}", format: jsonl, payload_only: true}}
settings: {{buffer: durable, buffer_size: 100000, batch_size: 200, timeout: 10}}
"""
PER_REQUEST = 200
PAD = "x" * 300


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for this test alone."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if done.returncode != 0:
        why = f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20, check=False)


def fill(path: Path) -> None:
    """Write `path` until the disk has no room left."""
    chunk = b"\0" * (64 * 1024)
    with path.open("wb", buffering=0) as f:
        for _ in range(100_000):  # bounded: 6 GiB, far more than the tmpfs
            try:
                f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    with contextlib.suppress(OSError), path.open("ab", buffering=0) as f:
        for _ in range(64):  # the last partial block
            f.write(b"\0" * 512)


def post(client: httpx.Client, first: int) -> httpx.Response:
    return client.post("/ingest", json=[{"seq": s, "pad": PAD} for s in range(first, first + PER_REQUEST)])


def seqs(out: Path) -> Counter[int]:
    if not out.exists():
        return Counter()
    return Counter(json.loads(line)["seq"] for line in out.read_bytes().splitlines() if line.strip())


def test_disk_full_pushes_back_and_resumes(tmp_path: Path, small_disk: Path) -> None:
    out = tmp_path / "out.jsonl"
    (tmp_path / "p.yaml").write_text(PATTERN.format(out=out))
    log = tmp_path / "log.txt"
    port = free_port()
    data = small_disk / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wireway",
            "run",
            str(tmp_path / "p.yaml"),
            "--data-dir",
            str(data),
            "--http",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    acked: set[int] = set()
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as c:
            seq = 0
            for _ in range(5):  # with room: accepted
                r = post(c, seq)
                assert r.status_code == 202, r.text
                acked.update(range(seq, seq + PER_REQUEST))
                seq += PER_REQUEST
            filler = small_disk / "filler"
            fill(filler)
            refused = None
            for _ in range(500):
                r = post(c, seq)
                if r.status_code == 202:
                    acked.update(range(seq, seq + PER_REQUEST))
                else:
                    refused = r
                    break
                seq += PER_REQUEST
            assert refused is not None, "the disk never filled"
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert "is full" in refused.text
            ready = c.get("/ready")
            assert ready.status_code == 503
            assert any(d.startswith("buffer: full") for d in ready.json()["down"]), ready.json()
            assert c.get("/health").status_code == 200  # alive: no restart wanted
            for _ in range(3):  # still refused, not failing
                assert post(c, seq).status_code == 503
            assert proc.poll() is None

            filler.unlink()  # room again: ingestion resumes by itself
            freed = time.monotonic()
            deadline = freed + 20
            while c.get("/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.get("/ready").status_code == 200
            recovery = time.monotonic() - freed
            for _ in range(5):
                r = post(c, seq)
                assert r.status_code == 202, r.text
                acked.update(range(seq, seq + PER_REQUEST))
                seq += PER_REQUEST

        deadline = time.monotonic() + 20
        seen = seqs(out)
        while not acked <= set(seen) and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = seqs(out)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    lost = acked - set(seen)
    assert not lost, f"{len(lost)} acknowledged readings lost, e.g. {sorted(lost)[:5]}"
    record(
        "disk_full",
        "Data directory's disk full (tmpfs): HTTP 503 + Retry-After, then space freed",
        acked,
        seen,
        recovery,
        refused_with=refused.status_code,
    )
    assert code == 0
    text = log.read_text()
    assert text.count("buffer full: inputs are pushed back") == 1, text
    assert "buffer has room again" in text
    assert "Traceback" not in text
    with contextlib.closing(sqlite3.connect(data / "buffer.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
