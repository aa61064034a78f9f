"""PostgreSQL going away under an HTTP load into the `sql` output: wireway's
connections killed again and again (`pg_terminate_backend`), and the database
refusing every connection for 10 s (`ALLOW_CONNECTIONS false`). Nothing answered
202 is lost, and the idempotent table stores nothing twice.

The connection kills are quick and stay in `make test`; the 10 s refusal is a
`faults` test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_harness import PG_DSN, HttpLoad, Wireway, assert_none_lost, pg_seqs, psql, record, wait_delivered

from conftest import need_service

KILLS = 6
REFUSAL = 10.0

PATTERN = """
pattern: {{name: pg-faults, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - type: sql
      url: "{url}"
      table: t
      columns: {{message_id: messageId, seq: payload.seq}}
settings: {{buffer: durable, buffer_size: 200000, batch_size: 500, retries: 50, backoff_max: 1, breaker_timeout: 1}}
"""


@pytest.fixture
def pg_db() -> Iterator[str]:
    need_service("PostgreSQL", 5432)
    name = f"wireway_faults_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE DATABASE {name}")
    psql("CREATE TABLE t (message_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)", name)
    try:
        yield name
    finally:
        psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def terminate(db: str) -> int:
    """Kill every connection to `db` (wireway's); returns how many."""
    out = psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = '{db}' AND pid <> pg_backend_pid()"
    )
    return int(out.strip() or 0)


@pytest.mark.faults
def test_postgres_connections_killed(tmp_path: Path, pg_db: str) -> None:
    inst = Wireway(tmp_path, PATTERN.format(url=f"{PG_DSN}/{pg_db}"))
    inst.start()
    load = HttpLoad(f"{inst.url}/ingest", workers=2, pause=0.01).start()
    killed = 0
    try:
        load.wait_acked(1000)
        for _ in range(KILLS):
            killed += terminate(pg_db)
            time.sleep(0.7)
        mark = load.issued
        before = load.acked.snapshot()
        _, recovery = wait_delivered(lambda: pg_seqs(pg_db), before, beyond=mark, timeout=60)
        acked = load.stop()
        seen, _ = wait_delivered(lambda: pg_seqs(pg_db), acked)
    finally:
        load.stop()
        inst.stop()
    record(
        "postgres_connections_killed",
        f"PostgreSQL: wireway's connections killed {KILLS} times (pg_terminate_backend)",
        acked,
        seen,
        recovery,
        connections_killed=killed,
    )
    assert killed >= KILLS, "wireway held no connection to kill"
    assert_none_lost(acked, seen)
    assert sum(seen.values()) == len(seen)


@pytest.mark.faults
def test_postgres_refuses_connections_10s(tmp_path: Path, pg_db: str) -> None:
    inst = Wireway(tmp_path, PATTERN.format(url=f"{PG_DSN}/{pg_db}"))
    inst.start()
    load = HttpLoad(f"{inst.url}/ingest", workers=2, pause=0.01).start()
    try:
        load.wait_acked(1000)
        psql(f"ALTER DATABASE {pg_db} ALLOW_CONNECTIONS false")
        terminate(pg_db)
        time.sleep(REFUSAL)
        during = len(load.acked)
        psql(f"ALTER DATABASE {pg_db} ALLOW_CONNECTIONS true")
        mark = load.issued
        before = load.acked.snapshot()
        _, recovery = wait_delivered(lambda: pg_seqs(pg_db), before, beyond=mark, timeout=60)
        acked = load.stop()
        seen, _ = wait_delivered(lambda: pg_seqs(pg_db), acked)
    finally:
        load.stop()
        inst.stop()
    record(
        "postgres_refusing_10s",
        "PostgreSQL refusing connections for 10 s (ALLOW_CONNECTIONS false)",
        acked,
        seen,
        recovery,
    )
    assert during > 1000, "ingestion should go on into the buffer while the database is away"
    assert_none_lost(acked, seen)
    assert sum(seen.values()) == len(seen)
