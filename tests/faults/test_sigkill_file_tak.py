"""SIGKILL then restart, five times in one run, for the `file` tail input and the `tak`
output over TCP.

The file: every line the test appended (the file keeps it; wireway's checkpoint,
committed with the messages, decides where a restart reads on) arrives once in an
idempotent table. TAK: every reading answered 202 arrives as a CoT event at a TCP
listener the test owns; CoT over TCP has no acknowledgement, so an event sent just
before a kill is sent again after the restart: duplicates are counted, not refused
(TAK clients key events by uid).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from fault_harness import (
    HttpLoad,
    Wireway,
    assert_none_lost,
    record,
    sqlite_seqs,
    wait_delivered,
)
from fault_net import TcpListener

pytestmark = pytest.mark.faults

CYCLES = 5

FILE_PATTERN = """
pattern: {{name: kill-file, type: filesystem}}
interfaces:
  input:
    - {{type: file, path: "{path}", format: jsonl, poll_interval: 0.2}}
  output:
    - type: sql
      url: "sqlite:///{db}"
      table: t
      columns: {{message_id: messageId, seq: payload.seq}}
settings: {{buffer: durable, buffer_size: 200000, batch_size: 500}}
"""

TAK_PATTERN = """
pattern: {{name: kill-tak, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - type: tak
      address: "tcp://127.0.0.1:{port}"
      reconnect_max: 1
      format:
        type: cot
        set: {{uid: "'seq-' + string(payload.seq)", lat: "51.5", lon: "-0.1"}}
settings: {{buffer: durable, buffer_size: 200000, batch_size: 200}}
"""


class Appender:
    """Appends numbered JSON lines to a file, a few at a time, until stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 600
        with open(self.path, "a") as f:
            while not self._stop.is_set() and time.monotonic() < deadline:
                f.write("".join(f'{{"seq": {self.written + i}, "pad": "xxxxxxxx"}}\n' for i in range(50)))
                f.flush()
                self.written += 50
                self._stop.wait(0.01)

    def start(self) -> Appender:
        self.thread.start()
        return self

    def stop(self) -> set[int]:
        self._stop.set()
        self.thread.join(30)
        return set(range(self.written))


def test_sigkill_file_tail(tmp_path: Path) -> None:
    log, db = tmp_path / "in.jsonl", tmp_path / "out.db"
    log.touch()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (message_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
    inst = Wireway(tmp_path, FILE_PATTERN.format(path=log, db=db))
    inst.start()
    appender = Appender(log).start()
    worst = 0.0
    try:
        for _ in range(CYCLES):
            target = appender.written + 3000
            wait_delivered(lambda: sqlite_seqs(db), set(range(target)), timeout=60)
            inst.kill()
            written = set(range(appender.written))
            started = time.monotonic()
            inst.start()
            seen, _ = wait_delivered(lambda: sqlite_seqs(db), written, beyond=appender.written)
            assert_none_lost(written, seen)
            worst = max(worst, time.monotonic() - started)
        written = appender.stop()
        seen, _ = wait_delivered(lambda: sqlite_seqs(db), written)
    finally:
        appender.stop()
        inst.stop()
    record("sigkill_file_tail", "SIGKILL x5 while tailing a file (file -> SQLite)", written, seen, worst)
    assert_none_lost(written, seen)
    assert sum(seen.values()) == len(seen), "a line was read twice (the checkpoint went back)"


def test_sigkill_tak_output(tmp_path: Path) -> None:
    listener = TcpListener(rb'uid="seq-(\d+)"')
    inst = Wireway(tmp_path, TAK_PATTERN.format(port=listener.port))
    inst.start()
    load = HttpLoad(f"{inst.url}/ingest", workers=2).start()
    worst = 0.0
    seen: Counter[int] = Counter()
    try:
        for _ in range(CYCLES):
            load.wait_acked(len(load.acked) + 2000)
            inst.kill()
            before = load.acked.snapshot()
            started = time.monotonic()
            inst.start()
            seen, _ = wait_delivered(listener.seqs, before, beyond=load.issued)
            assert_none_lost(before, seen)
            worst = max(worst, time.monotonic() - started)
        acked = load.stop()
        seen, _ = wait_delivered(listener.seqs, acked)
    finally:
        load.stop()
        inst.stop()
        listener.close()
    record(
        "sigkill_tak_tcp",
        "SIGKILL x5 with the TAK output streaming CoT over TCP",
        acked,
        seen,
        worst,
        duplicates_note="resent after a kill; CoT over TCP has no ack",
    )
    assert_none_lost(acked, seen)
