"""SQLite through the stdlib `sqlite3`, on one dedicated thread.

The event loop never blocks: every call runs on the database's own thread (WAL,
`synchronous=NORMAL`, a busy timeout). Statements are serialized by an asyncio lock,
which a transaction holds until it ends (inside one, use the `Tx`, never the
`Database`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from wireway.connectors.sql.base import (
    PING_TIMEOUT,
    Database,
    Json,
    QueryFailed,
    RejectedData,
    Tx,
    format_timestamp,
    json_text,
    result_value,
)
from wireway.connectors.sql.rewrite import sqlite_sql
from wireway.errors import ConnectorError, NotConnected

T = TypeVar("T")

JSON_DECLTYPES = ("JSON", "JSONB", "JSON_TEXT")  # declared types decoded as JSON
BUSY_TIMEOUT_MS = 5000


def _sqlite_value(value: Any) -> Any:
    t = type(value)
    if value is None or t is str or t is int or t is float or t is bool or t is bytes:
        return value
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Json):
        return json_text(value.value)
    if isinstance(value, dict | list | tuple):
        return json_text(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _sqlite_args(args: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_sqlite_value(a) for a in args)


def _decode_json_column(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw.decode("utf-8", "replace")


for _name in JSON_DECLTYPES:
    sqlite3.register_converter(_name, _decode_json_column)


def _wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL (kept in the file). The switch needs the database to itself and
    SQLite does not wait for that, so a busy database is retried up to the busy timeout."""
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() in ("wal", "memory"):
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL").close()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,  # autocommit; transactions are explicit
        check_same_thread=False,  # but only ever used from its one thread
        detect_types=sqlite3.PARSE_DECLTYPES,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _status(sql: str, rowcount: int) -> str:
    words = sql.split(None, 1)
    verb = words[0].upper() if words else ""
    n = max(rowcount, 0)
    if verb == "INSERT":
        return f"INSERT 0 {n}"
    if verb in ("UPDATE", "DELETE"):
        return f"{verb} {n}"
    return verb


def _rows(cursor: sqlite3.Cursor, rows: list[Any]) -> list[dict[str, Any]]:
    if not rows:
        return []
    names = [d[0] for d in cursor.description]
    out = [dict(zip(names, row, strict=True)) for row in rows]
    temporal = (datetime, date)
    for i, name in enumerate(names):  # DATE / TIMESTAMP columns parsed by stdlib converters
        if any(type(row[i]) in temporal for row in rows):
            for d in out:
                d[name] = result_value(d[name])
    return out


def _q_execute(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> str:
    cur = conn.execute(sql, args)
    try:
        return _status(sql, cur.rowcount)
    finally:
        cur.close()


def _q_executemany(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    cur = conn.executemany(sql, rows)
    cur.close()


def _q_executemany_tx(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        _q_executemany(conn, sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        _q_rollback(conn)
        raise


def _q_fetch(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    cur = conn.execute(sql, args)
    try:
        return _rows(cur, cur.fetchall())
    finally:
        cur.close()


def _q_fetchrow(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
    cur = conn.execute(sql, args)
    try:
        row = cur.fetchone()
        return _rows(cur, [row])[0] if row is not None else None
    finally:
        cur.close()


def _q_script(conn: sqlite3.Connection, sql: str) -> None:
    conn.execute(sql).close()


def _q_rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _q_close(conn: sqlite3.Connection) -> None:
    _q_rollback(conn)
    conn.close()


def translate_sqlite(exc: BaseException) -> ConnectorError:
    """The wireway error for a sqlite3 exception."""
    if isinstance(exc, ConnectorError):
        return exc
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | OverflowError):
        return RejectedData(text)
    if isinstance(exc, sqlite3.InterfaceError | sqlite3.ProgrammingError):
        if "closed" in low:
            return NotConnected(f"SQLite: {text}")
        if "binding" in low or "not supported" in low:
            return RejectedData(text)
        return QueryFailed(text)
    if isinstance(exc, sqlite3.OperationalError):
        if "unable to open" in low or "disk i/o" in low or "readonly" in low:
            return NotConnected(f"SQLite: {text}")
        if "mismatch" in low:
            return RejectedData(text)
        return QueryFailed(text)
    if isinstance(exc, OSError):
        return NotConnected(f"SQLite: {text}")
    return QueryFailed(text)


_SQLITE_ERRORS = (sqlite3.Error, OverflowError, OSError)


class SqliteDatabase(Database):
    """SQLite on one dedicated thread."""

    dialect = "sqlite"

    def __init__(self, path: str, url: str) -> None:
        self.path = path
        self.url = url
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()  # one statement or transaction at a time
        self._opening = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def open(self) -> None:
        async with self._opening:
            if self._conn is not None:
                return
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wireway-sqlite")
            loop = asyncio.get_running_loop()
            try:
                self._conn = await loop.run_in_executor(executor, _sqlite_connect, self.path)
            except _SQLITE_ERRORS as exc:
                executor.shutdown(wait=False)
                raise NotConnected(f"cannot open SQLite database {self.path}: {exc}") from exc
            self._executor = executor

    async def close(self) -> None:
        async with self._opening, self._lock:
            conn, executor = self._conn, self._executor
            self._conn = self._executor = None
            if conn is None or executor is None:
                return
            loop = asyncio.get_running_loop()
            with suppress(sqlite3.Error):
                await loop.run_in_executor(executor, _q_close, conn)
            executor.shutdown(wait=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(connection, *args)` on the database thread, errors translated.

        Does not take the statement lock: use it inside a transaction or while
        holding `lock` yourself.
        """
        if self._conn is None:
            await self.open()
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            raise NotConnected(f"SQLite database {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, fn, conn, *args)
        except _SQLITE_ERRORS as exc:
            raise translate_sqlite(exc) from exc

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT), self._lock:
                await self.call(_q_fetchrow, "SELECT 1", ())
        except (ConnectorError, TimeoutError):
            return False
        return True

    async def execute(self, sql: str, *args: Any) -> str:
        async with self._lock:
            return await self.call(_q_execute, sqlite_sql(sql), _sqlite_args(args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        data = [_sqlite_args(r) for r in rows]
        async with self._lock:
            await self.call(_q_executemany_tx, sqlite_sql(sql), data)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._lock:
            return await self.call(_q_fetch, sqlite_sql(sql), _sqlite_args(args))

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        async with self._lock:
            return await self.call(_q_fetchrow, sqlite_sql(sql), _sqlite_args(args))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._lock:
            await self.call(_q_script, "BEGIN IMMEDIATE")
            tx = SqliteTx(self)
            try:
                yield tx
            except BaseException:
                with suppress(ConnectorError):
                    await asyncio.shield(self.call(_q_rollback))
                raise
            else:
                try:
                    await self.call(_q_script, "COMMIT")
                except ConnectorError:
                    with suppress(ConnectorError):
                        await self.call(_q_rollback)
                    raise
            finally:
                tx.closed = True


class SqliteTx(Tx):
    """Statements inside one SQLite transaction (the database's lock is held)."""

    dialect = "sqlite"

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.closed = False
        self._savepoints = 0

    def _check(self) -> None:
        if self.closed:
            raise QueryFailed("the transaction has ended")

    async def execute(self, sql: str, *args: Any) -> str:
        self._check()
        return await self.db.call(_q_execute, sqlite_sql(sql), _sqlite_args(args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._check()
        data = [_sqlite_args(r) for r in rows]
        await self.db.call(_q_executemany, sqlite_sql(sql), data)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        self._check()
        return await self.db.call(_q_fetch, sqlite_sql(sql), _sqlite_args(args))

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        self._check()
        return await self.db.call(_q_fetchrow, sqlite_sql(sql), _sqlite_args(args))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[Tx]:
        self._check()
        self._savepoints += 1
        name = f"wireway_sp{self._savepoints}"
        await self.db.call(_q_script, f"SAVEPOINT {name}")
        try:
            yield self
        except BaseException:
            with suppress(ConnectorError):
                await self.db.call(_q_script, f"ROLLBACK TO {name}")
                await self.db.call(_q_script, f"RELEASE {name}")
            raise
        else:
            await self.db.call(_q_script, f"RELEASE {name}")
