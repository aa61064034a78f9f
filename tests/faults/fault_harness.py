"""What every fault test shares: `wireway run` as a subprocess, a numbered load, sinks
that count what arrived, and the report row each test leaves for docs/reliability.md.

A message carries `seq`, a number unique in its test. Acknowledged: the sender got
its acknowledgement (HTTP 202, a PUBACK, a line the file input checkpointed).
Delivered: the distinct seqs found at the far end. Lost: acknowledged and not
delivered. Duplicates: arrivals beyond the first of a seq.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from conftest import ROOT, free_port, wait_http

PG_DSN = "postgresql://postgres@127.0.0.1:5432"


def report_dir() -> Path:
    """Where each fault test leaves its row (benchmarks/faults_table.py reads them)."""
    return Path(os.environ.get("WIREWAY_FAULTS_REPORT", ROOT / ".faults"))


class Wireway:
    """`wireway run PATTERN` as a subprocess with its own data dir and HTTP port."""

    def __init__(self, tmp: Path, pattern: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.pattern = tmp / "pattern.yaml"
        self.pattern.write_text(pattern)
        self.env = {**os.environ, **(env or {})}
        self.env.pop("WIREWAY_CONFIG", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "wireway.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "wireway", "run", str(self.pattern)),
                    *("--data-dir", str(self.tmp / "data"), "--http", f"127.0.0.1:{self.port}"),
                ],
                cwd=self.tmp,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        """Until /health answers; fails at once, with the log's end, if the process exits."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise AssertionError(f"wireway exited with {self.proc.returncode}:\n{tail}")
            try:
                wait_http(f"{self.url}/health", timeout=0.5)
                return
            except TimeoutError:
                continue
        raise AssertionError(f"wireway did not answer on {self.url} in {timeout}s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        """SIGTERM (drains), SIGKILL if it does not end in time."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


class Acked:
    """A thread-safe set of acknowledged seqs."""

    def __init__(self) -> None:
        self.seqs: set[int] = set()
        self.lock = threading.Lock()

    def add(self, seqs: Iterable[int]) -> None:
        with self.lock:
            self.seqs.update(seqs)

    def snapshot(self) -> set[int]:
        with self.lock:
            return set(self.seqs)

    def __len__(self) -> int:
        with self.lock:
            return len(self.seqs)


class HttpLoad:
    """Threads POSTing arrays of numbered messages to an `http` input until stopped.

    A request that fails or is not answered 202 is simply not acknowledged; its
    seqs are not sent again (a later restart may still deliver them: they count as
    delivered, never as lost).
    """

    def __init__(
        self, url: str, per_request: int = 10, workers: int = 2, pause: float = 0.0, limit: int = 2_000_000
    ) -> None:
        self.url = url
        self.per_request = per_request
        self.workers = workers
        self.pause = pause
        self.limit = limit
        self.acked = Acked()
        self.refused: Counter[int] = Counter()  # status -> requests
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _chunk(self) -> list[int]:
        with self._lock:
            start = self._next
            self._next += self.per_request
        return list(range(start, start + self.per_request))

    def _worker(self) -> None:
        deadline = time.monotonic() + 600
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self._stop.is_set() and time.monotonic() < deadline and self._next < self.limit:
                chunk = self._chunk()
                try:
                    r = client.post(self.url, json=[{"seq": s, "pad": "x" * 32} for s in chunk])
                except httpx.HTTPError:
                    self._stop.wait(0.05)  # the server is gone or restarting
                    continue
                if r.status_code == 202:
                    self.acked.add(chunk)
                else:
                    with self._lock:
                        self.refused[r.status_code] += 1
                    self._stop.wait(0.05)
                if self.pause:
                    self._stop.wait(self.pause)

    def start(self) -> HttpLoad:
        self._threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.workers)]
        for t in self._threads:
            t.start()
        return self

    @property
    def issued(self) -> int:
        """The next seq to be sent: anything at least this high was sent later."""
        with self._lock:
            return self._next

    def wait_acked(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.acked)} of {n} acknowledged in {timeout}s")
            time.sleep(0.05)

    def stop(self) -> set[int]:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        return self.acked.snapshot()


def sqlite_seqs(path: Path, table: str = "t") -> Counter[int]:
    """Rows by seq in a SQLite table that wireway may be writing."""
    if not path.exists():
        return Counter()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return Counter(row[0] for row in conn.execute(f"SELECT seq FROM {table}"))
    except sqlite3.OperationalError:
        return Counter()  # the table is not created yet
    finally:
        conn.close()


def psql(sql: str, db: str = "postgres") -> str:
    """One statement through psql (trust auth as user postgres); its rows as text."""
    result = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", db],
        input=sql,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"psql failed: {result.stderr.strip()}")
    return result.stdout


def pg_seqs(db: str, table: str = "t") -> Counter[int]:
    out = psql(f"SELECT seq FROM {table}", db)
    return Counter(int(line) for line in out.split())


def jsonl_seqs(path: Path) -> Counter[int]:
    if not path.exists():
        return Counter()
    seen: Counter[int] = Counter()
    for line in path.read_bytes().splitlines():
        if line.strip():
            seen[json.loads(line)["seq"]] += 1
    return seen


def wait_delivered(
    arrived: Callable[[], Counter[int]], wanted: set[int], timeout: float = 90, beyond: int | None = None
) -> tuple[Counter[int], float]:
    """Poll the far end until every wanted seq is there and, with `beyond`, also a seq
    at least that high (new messages flow again); bounded. Returns what arrived and
    the seconds it took: the recovery time when called as the fault ends."""
    started = time.monotonic()
    deadline = started + timeout

    def done(seen: Counter[int]) -> bool:
        flowing = beyond is None or any(s >= beyond for s in seen)
        return flowing and wanted <= seen.keys()

    seen = arrived()
    while not done(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = arrived()
    return seen, time.monotonic() - started


def record(
    test: str,
    fault: str,
    acked: set[int],
    seen: Counter[int],
    recovery: float | None,
    **extra: Any,
) -> dict[str, Any]:
    """Write this test's row for the reliability table; returns it."""
    lost = acked - seen.keys()
    row = {
        "test": test,
        "fault": fault,
        "acknowledged": len(acked),
        "delivered": len(seen),
        "lost": len(lost),
        "duplicates": sum(seen.values()) - len(seen),
        "recovery_s": None if recovery is None else round(recovery, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    folder = report_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{test}.json").write_text(json.dumps(row, indent=1) + "\n")
    return row


def assert_none_lost(acked: set[int], seen: Counter[int]) -> None:
    lost = acked - seen.keys()
    assert acked, "nothing was acknowledged: the load never reached wireway"
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged messages lost, e.g. {sorted(lost)[:5]}"
