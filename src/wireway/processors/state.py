"""A step's own state file: a small SQLite database in the engine's data folder.

Used by steps that must remember something across a restart (`dedupe` with a
`window`, `aggregate`'s open windows). Every statement runs on one thread of the
file's own, in the order it was submitted, so the event loop never waits on the
disk and a write submitted from `committed()` (a plain function) is never
reordered with a later one.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from wireway.observability import logging as log

T = TypeVar("T")
logger = log.get("state")

# files claimed by running steps: two steps of one kind in one pattern get two files
_claimed: set[Path] = set()


def claim_path(data_dir: Path, pattern: str, kind: str) -> Path:
    """`<data_dir>/state/<pattern>.<kind>.db` for the first such step that starts, then
    `<pattern>.<kind>.2.db`, ... (steps start in their order in the file, so each keeps
    its file across restarts). `release_path` gives it back."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", pattern or "pattern")
    n = 1
    while True:
        suffix = f".{n}" if n > 1 else ""
        path = (data_dir / "state" / f"{safe}.{kind}{suffix}.db").absolute()
        if path not in _claimed:
            _claimed.add(path)
            return path
        n += 1


def release_path(path: Path) -> None:
    _claimed.discard(path)


class StateFile:
    """One SQLite file written from a single thread (WAL, synchronous=NORMAL: a
    process crash loses nothing committed; a power cut may lose the last writes)."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self.schema = schema
        self.conn: sqlite3.Connection | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"wireway-state-{path.stem}")
        self.errors: list[BaseException] = []

    async def open(self) -> None:
        await asyncio.wrap_future(self.pool.submit(self._connect))

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(self.schema)
        self.conn = conn

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self.conn is None:
            raise RuntimeError(f"state file {self.path} is not open")
        return fn(self.conn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(conn, *args) on the file's thread; its result."""
        return await asyncio.wrap_future(self.pool.submit(self._call, fn, args))

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """fn(conn, *args) on the file's thread, without waiting (a failure is kept and
        raised by `flush`)."""
        future = self.pool.submit(self._call, fn, args)
        future.add_done_callback(self._keep_error)

    def _keep_error(self, future: Future[Any]) -> None:
        exc = None if future.cancelled() else future.exception()
        if exc is not None:
            logger.error("could not write a state file", path=str(self.path), error=str(exc))
            self.errors.append(exc)

    async def flush(self) -> None:
        """Wait for every submitted write; raise the first that failed."""
        await self.run(_nothing)
        if self.errors:
            first, self.errors = self.errors[0], []
            raise first

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            if self.conn is not None:
                await self.run(_close)
                self.conn = None
            self.pool.shutdown(wait=True)


def _nothing(conn: sqlite3.Connection) -> None:
    return None


def _close(conn: sqlite3.Connection) -> None:
    conn.close()


def transaction(conn: sqlite3.Connection, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    """Run (sql, rows) pairs with executemany in one transaction."""
    conn.execute("BEGIN")
    try:
        for sql, rows in statements:
            if rows:
                conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
