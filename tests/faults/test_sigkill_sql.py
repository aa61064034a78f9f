"""SIGKILL during ingestion, then a restart, five times in one run: HTTP readings into
SQLite and into PostgreSQL lose nothing that was answered 202, and the idempotent
table (unique message id, `on_conflict: ignore`) stores no message twice."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fault_harness import (
    PG_DSN,
    HttpLoad,
    Wireway,
    assert_none_lost,
    pg_seqs,
    psql,
    record,
    sqlite_seqs,
    wait_delivered,
)

from conftest import need_service

pytestmark = pytest.mark.faults

CYCLES = 5
PER_CYCLE = 3000  # messages acknowledged between two kills

PATTERN = """
pattern: {{name: kill-sql, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - type: sql
      url: "{url}"
      table: t
      columns: {{message_id: messageId, seq: payload.seq}}
      on_conflict: ignore
settings: {{buffer: durable, buffer_size: 200000, batch_size: 500, retries: 50, backoff_max: 1}}
"""

TABLE = "CREATE TABLE t (message_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)"


@pytest.fixture
def pg_db() -> Iterator[str]:
    need_service("PostgreSQL", 5432)
    name = f"wireway_faults_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE DATABASE {name}")
    psql(TABLE, name)
    try:
        yield name
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def kill_cycles(inst: Wireway, arrived: Callable[[], Counter[int]]) -> tuple[set[int], Counter[int], float]:
    """Load, SIGKILL, restart, CYCLES times; returns acked, arrived, worst recovery."""
    inst.start()
    load = HttpLoad(f"{inst.url}/ingest", workers=3).start()
    worst = 0.0
    try:
        for _ in range(CYCLES):
            load.wait_acked(len(load.acked) + PER_CYCLE)
            inst.kill()
            before = load.acked.snapshot()
            started = time.monotonic()
            inst.start()
            seen, _ = wait_delivered(arrived, before, beyond=load.issued)
            assert_none_lost(before, seen)
            worst = max(worst, time.monotonic() - started)
        acked = load.stop()
        seen, _ = wait_delivered(arrived, acked)
    finally:
        load.stop()
        inst.stop()
    return acked, seen, worst


def test_sigkill_http_to_sqlite(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "out.db"
    with sqlite3.connect(db) as conn:
        conn.execute(TABLE)
    inst = Wireway(tmp_path, PATTERN.format(url=f"sqlite:///{db}"))
    acked, seen, worst = kill_cycles(inst, lambda: sqlite_seqs(db))
    record("sigkill_http_sqlite", "SIGKILL x5 during HTTP ingestion (SQLite)", acked, seen, worst)
    assert_none_lost(acked, seen)
    assert sum(seen.values()) == len(seen), "a redelivered message was stored twice"


def test_sigkill_http_to_postgresql(tmp_path: Path, pg_db: str) -> None:
    inst = Wireway(tmp_path, PATTERN.format(url=f"{PG_DSN}/{pg_db}"))
    acked, seen, worst = kill_cycles(inst, lambda: pg_seqs(pg_db))
    record("sigkill_http_postgresql", "SIGKILL x5 during HTTP ingestion (PostgreSQL)", acked, seen, worst)
    assert_none_lost(acked, seen)
    assert sum(seen.values()) == len(seen), "a redelivered message was stored twice"
