"""The durable buffer's file checked at start; a damaged one moved aside, what it still holds kept.

A file is damaged when SQLite cannot read it as a database, `PRAGMA quick_check`
finds a fault, or it is some other SQLite file (tables, but not the buffer's
`outbox` and `meta`). Then, with `settings.on_damaged_buffer: move_aside` (the
default), it is renamed `<name>.damaged-<UTC time>` (its `-wal` beside it, so SQLite
still opens the pair), a new buffer is created, and every row of the outbox, the
dead letters and the inputs' positions that can still be read and decoded is copied
into it, before anything else runs: a log line names the moved file, how many
messages were kept and how many could not be read. With `refuse` the process does
not start (exit 1, the same message, no traceback).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from wireway.envelope import decode
from wireway.observability import logging as log
from wireway.runtime.buffer_file import INSERT_DLQ, INSERT_OUTBOX, SCHEMA, connect, save_positions
from wireway.runtime.store import StoreError

logger = log.get("buffer")
OnDamaged = Literal["move_aside", "refuse"]
REQUIRED = {"outbox": {"id", "queue", "body", "enqueued_at"}, "meta": {"key", "value"}}
CHUNK = 256  # rows read at once while nothing is damaged
MAX_MISSES = 10_000  # reads that fail, at most, while skipping damaged pages
SIDE_FILES = ("-wal", "-shm")


class DamagedBuffer(StoreError):
    """The buffer file is damaged and `on_damaged_buffer: refuse` keeps the process from starting."""


def problem(path: Path) -> str | None:
    """Why `path` is not a sound buffer file (None: it is, or there is none yet)."""
    if not path.exists():
        return None
    try:
        with contextlib.closing(connect(path)) as conn:
            found = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
            if found != ["ok"]:
                return "integrity check: " + "; ".join(str(f) for f in found)
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if not tables:
                return None  # an empty database: the schema is created in it
            for table, columns in REQUIRED.items():
                if table not in tables:
                    return f"not a wireway buffer (no {table} table; tables: {', '.join(sorted(tables))})"
                have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                if not columns <= have:
                    return f"not a wireway buffer ({table} lacks {', '.join(sorted(columns - have))})"
            if conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() is None:
                return "not a wireway buffer (no schema_version in meta)"
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def ensure_sound(path: Path, on_damaged: OnDamaged = "move_aside") -> Path | None:
    """Check the buffer file; move a damaged one aside and keep what it still holds.
    Returns where it was moved (None: it was sound). Raises DamagedBuffer under `refuse`."""
    why = problem(path)
    if why is None:
        return None
    if on_damaged == "refuse":
        raise DamagedBuffer(
            f"the buffer file {path} is damaged ({why}); not starting (settings.on_damaged_buffer: "
            f"refuse). Move it aside (with its -wal file) to start with an empty buffer, or set "
            f"on_damaged_buffer: move_aside to let wireway move it and keep what can still be read"
        )
    aside = move_aside(path)
    kept, lost = salvage(aside, path)
    logger.error(
        "damaged buffer file moved aside",
        file=str(path),
        moved_to=str(aside),
        reason=why,
        messages_kept=kept.get("outbox", 0),
        dead_letters_kept=kept.get("dlq", 0),
        failed_reads=lost,
        what_to_do=f"the new {path.name} holds what could be read; keep {aside.name} to inspect "
        "(sqlite3 .recover) or delete it",
    )
    return aside


def move_aside(path: Path) -> Path:
    """Rename the file (and its -wal/-shm) to `<name>.damaged-<UTC time>`."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    path.rename(aside)
    return aside


def _readable(conn: sqlite3.Connection, select: str) -> tuple[list[tuple[Any, ...]], int]:
    """The rows of `select` (whose first column is the integer key) that can be read, in
    key order, skipping damaged pages: a failed read goes on one row at a time, then
    further ahead in growing steps. Returns the rows and the reads that failed."""
    rows: dict[int, tuple[Any, ...]] = {}
    after = -(1 << 62)
    misses = 0
    step = 1
    one = False
    while misses < MAX_MISSES:
        try:
            got = conn.execute(f"{select} WHERE id > ? ORDER BY id LIMIT ?", (after, 1 if one else CHUNK))
            batch = got.fetchall()
        except sqlite3.Error:
            misses += 1
            if one:  # this very row cannot be reached: look further ahead
                after += step
                step *= 2
            one = True
            continue
        batch = [r for r in batch if isinstance(r[0], int) and r[0] > after]  # a damaged tree may lie
        if not batch:
            break
        rows.update((r[0], r) for r in batch)
        after = max(r[0] for r in batch)
        one = one and step > 1  # just past a damaged page: carry on row by row a little
        step = 1
    return [rows[k] for k in sorted(rows)], misses


def salvage(source: Path, target: Path) -> tuple[dict[str, int], int]:
    """Copy what can be read from the damaged `source` into a new buffer at `target`.
    Returns rows kept per table, and how many rows or reads were lost."""
    kept: dict[str, int] = {}
    lost = 0
    outbox: list[tuple[Any, ...]] = []
    dlq: list[tuple[Any, ...]] = []
    positions: dict[str, bytes] = {}
    last_id = 0
    try:
        conn = connect(source)
    except sqlite3.Error:
        conn = None
    if conn is not None:
        with contextlib.closing(conn):
            # read a file shorter than its header says (truncated); nothing is written here
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA query_only=ON")
                conn.execute("PRAGMA writable_schema=ON")
            outbox, misses = _try(conn, "SELECT id, queue, body, enqueued_at FROM outbox")
            lost += misses
            good = [r for r in outbox if _decodes(r[2])]
            lost += len(outbox) - len(good)
            outbox = good
            dlq, misses = _try(
                conn,
                "SELECT id, message_id, pattern, queue, reason, attempts, failed_at, body FROM dlq",
            )
            lost += misses
            with contextlib.suppress(sqlite3.Error, ValueError, TypeError):
                row = conn.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone()
                last_id = int(row[0]) if row else 0
            with contextlib.suppress(sqlite3.Error):
                positions = dict(conn.execute("SELECT key, value FROM positions").fetchall())
    with contextlib.closing(connect(target)) as new:
        new.execute("PRAGMA journal_mode=WAL")
        new.executescript(SCHEMA)
        new.execute("BEGIN IMMEDIATE")
        new.executemany(INSERT_OUTBOX, outbox)
        new.executemany(INSERT_DLQ, [r[1:] for r in dlq])
        if positions:
            save_positions(new, positions)
        top = max([last_id, *(r[0] for r in outbox)])
        new.execute("UPDATE meta SET value = ? WHERE key = 'last_id'", (str(top),))
        new.execute("COMMIT")
    kept["outbox"], kept["dlq"] = len(outbox), len(dlq)
    return kept, lost


def _try(conn: sqlite3.Connection, select: str) -> tuple[list[tuple[Any, ...]], int]:
    """`_readable`, or nothing when the table itself cannot be found."""
    try:
        conn.execute(select + " LIMIT 0").fetchall()
    except sqlite3.Error:
        return [], 0
    return _readable(conn, select)


def _decodes(body: Any, decoder: Callable[[bytes], Any] = decode) -> bool:
    try:
        decoder(body)
    except Exception:  # noqa: BLE001  (any body that does not decode stays in the moved file)
        return False
    return True
