"""The durable buffer's file, `<data_dir>/buffer.db`: its place, schema and statements.

One SQLite file holds the outbox (one row per message, see outbox.py), the dead
letters, the redrive requests the CLI leaves for a running instance, and `meta`
(schema version, highest id handed out). The outbox writer (outbox.py) and the DLQ
admin (dlq.py) both open it through `connect`. The multi-row statements below are
the writer's: it joins the inserts and deletes of a whole group into a few of them.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wireway.envelope import encode
from wireway.runtime.store import DeadLetter, StoreError

Synchronous = Literal["full", "normal"]  # PRAGMA synchronous of the writer: see outbox.SqliteStore
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY, queue TEXT NOT NULL, body BLOB NOT NULL, enqueued_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dlq(
  id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, pattern TEXT NOT NULL,
  queue TEXT, reason TEXT NOT NULL, attempts INTEGER NOT NULL, failed_at REAL NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS dlq_message_id ON dlq(message_id);
CREATE INDEX IF NOT EXISTS dlq_pattern ON dlq(pattern);
CREATE TABLE IF NOT EXISTS redrive(
  id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT, pattern TEXT, queue TEXT, body BLOB,
  attempts INTEGER);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS positions(key TEXT PRIMARY KEY, value BLOB NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '1'), ('last_id', '0');
"""
# its own file: the sensor application's SQLite storage has its own (in one file, its
# transactions would hold the outbox's commits behind them)
BUFFER_FILE = "buffer.db"


def buffer_path(data_dir: Path) -> Path:
    """The durable buffer's file, `<data_dir>/buffer.db`."""
    return data_dir / BUFFER_FILE


def connect(target: str | Path, *, uri: bool = False, shared: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit); `shared` lets
    another thread than the one that opened it use it."""
    conn = sqlite3.connect(
        target,
        timeout=5.0,
        isolation_level=None,
        check_same_thread=not shared,
        uri=uri,
        cached_statements=64,  # 9 INSERT and 7 DELETE sizes (see _sizes), and the rest
    )
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


INSERT_OUTBOX = "INSERT INTO outbox(id, queue, body, enqueued_at) VALUES (?, ?, ?, ?)"
DELETE_OUTBOX = "DELETE FROM outbox WHERE id = ?"
SELECT_RANGE = "SELECT id, body FROM outbox WHERE id BETWEEN ? AND ?"
_CHUNK = 256  # rows per multi-row INSERT (4 parameters each)


@functools.cache
def _insert_many(n: int) -> str:
    return INSERT_OUTBOX + ", (?, ?, ?, ?)" * (n - 1)


@functools.cache
def _delete_many(n: int) -> str:
    return "DELETE FROM outbox WHERE " + " OR ".join(["id BETWEEN ? AND ?"] * n)


def _sizes(n: int, top: int) -> list[int]:
    """n split into statement sizes: `top` (a power of two) while it fits, then n's
    lower bits (13 -> 8, 4, 1). Few distinct statement texts, so few prepared
    statements kept: a prepared 256-row INSERT is large."""
    sizes = [top] * (n // top)
    rest = n % top
    while rest:
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes


def _in_statements(
    conn: sqlite3.Connection, statement: Callable[[int], str], values: Sequence[tuple[Any, ...]], top: int
) -> None:
    """`values` in a few statements of `top`, then power-of-two sizes (see _sizes)."""
    at = 0
    for size in _sizes(len(values), top):
        conn.execute(statement(size), [v for value in values[at : at + size] for v in value]).close()
        at += size


def delete_ids(conn: sqlite3.Connection, ids: list[int]) -> None:
    """Outbox rows by id, as ranges of consecutive ids, up to 64 ranges a statement (see
    insert_rows for why few statements)."""
    _in_statements(conn, _delete_many, id_ranges(ids), 64)


def insert_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Outbox rows in a few multi-row INSERTs (of 256, 128, ... 1 rows).

    executemany steps the statement once per row, and the sqlite3 module lets go of
    the GIL around every step: under load the writer thread then waits for the event
    loop's thread to hand the GIL back (up to the interpreter's switch interval) once
    per row. A few statements per group keep it to a few waits.
    """
    _in_statements(conn, _insert_many, rows, _CHUNK)


def id_ranges(ids: Sequence[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7, 8] -> [(1, 3), (7, 8)]: a delivered batch is mostly consecutive ids."""
    out: list[tuple[int, int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        elif not out or i != out[-1][1]:
            out.append((i, i))
    return out


INSERT_DLQ = (
    "INSERT INTO dlq(message_id, pattern, queue, reason, attempts, failed_at, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def dlq_row(d: DeadLetter) -> tuple[str, str, str | None, str, int, float, bytes]:
    """A dead letter as the values of INSERT_DLQ."""
    m = d.message
    return (m.message_id, d.pattern, d.queue, d.reason, d.attempts, d.failed_at, encode(m))


def count_dlq(conn: sqlite3.Connection) -> dict[str, int]:
    """Dead letters per pattern."""
    rows = conn.execute("SELECT pattern, count(*) FROM dlq GROUP BY pattern").fetchall()
    return dict(rows)


def save_positions(conn: sqlite3.Connection, positions: dict[str, bytes]) -> None:
    """Where inputs have read up to (a file's offset), in the caller's transaction."""
    conn.executemany("INSERT OR REPLACE INTO positions(key, value) VALUES (?, ?)", positions.items())


@dataclass(slots=True)
class Opened:
    """The writer's connection to the buffer file and what it holds at start."""

    conn: sqlite3.Connection
    top: int  # the highest outbox id ever handed out
    dlq: dict[str, int]
    data_version: int
    positions: dict[str, bytes]


def open_writer(path: Path, synchronous: Synchronous) -> Opened:
    """The writer's connection: WAL, `synchronous`, no automatic checkpoints (the
    checkpointer thread does them), the schema created if missing."""
    conn = connect(path, shared=True)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: cannot use WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.executescript(SCHEMA)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if int(meta["schema_version"]) > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {meta['schema_version']}; "
                f"this wireway knows {SCHEMA_VERSION} (upgrade wireway)"
            )
        top = conn.execute("SELECT max(id) FROM outbox").fetchone()[0] or 0
        return Opened(
            conn,
            max(top, int(meta["last_id"] or 0)),
            count_dlq(conn),
            conn.execute("PRAGMA data_version").fetchone()[0],
            dict(conn.execute("SELECT key, value FROM positions").fetchall()),
        )
    except BaseException:
        conn.close()
        raise
