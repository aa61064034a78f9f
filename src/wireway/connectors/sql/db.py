"""One small async database layer over SQLite (stdlib `sqlite3`) and PostgreSQL (asyncpg).

SQL is written once, with PostgreSQL's `$1, $2` placeholders. The SQLite backend
rewrites each statement (cached): `$n` becomes `?n`, single-word `::type` casts are
dropped, and `now()` becomes the current UTC time as RFC 3339 text. String literals,
quoted identifiers and `--` comments are left alone.

Both dialects take and give the same shapes:

- arguments: timestamps as `datetime` (aware; a naive one is taken as UTC), JSON as
  a `dict` or `list` (or any value wrapped in `Json(...)`); other values as usual.
- results: rows are dicts; timestamps come back as RFC 3339 UTC strings with
  milliseconds (`2026-11-24T07:50:43.531Z`), DATE values as `YYYY-MM-DD`, JSON
  columns decoded. PostgreSQL decodes `json`/`jsonb` columns with codecs set on
  every pooled connection. SQLite decodes the columns *declared* `JSON`, `JSONB` or
  `JSON_TEXT` (the migrations use `JSON_TEXT`, which has TEXT affinity) whenever
  such a column is selected directly, not through an expression (`COALESCE(data, ...)`
  comes back as text).
- SQLite stores timestamps as TEXT, RFC 3339 in UTC with exactly three fraction
  digits, so they compare and sort as text; declare them TEXT (not TIMESTAMP or DATE,
  whose stdlib converters would get in the way). PostgreSQL keeps what it is given.

SQLite runs on one dedicated thread (WAL, `synchronous=NORMAL`, a busy timeout), so
the event loop never blocks; statements are serialized by an asyncio lock, which a
transaction holds until it ends (inside one, use the `Tx`, never the `Database`).
PostgreSQL uses an asyncpg pool of 1 to 4 connections. Neither connects before
`open()`; every other call opens lazily, so a database that was away at start is
picked up when it comes back.

Driver errors are translated at this edge (`raise ... from exc`): `NotConnected` when
the database cannot be reached or the connection was lost; `RejectedData` (a
`PermanentError`) when the database refused the data itself (a constraint, a type, a
value too long: sending the same data again cannot help); `QueryFailed` (a
`RetryableError`) for anything else (a lock, a deadlock, a missing table).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from wireway.errors import ConnectorError, NotConnected, PermanentError, RetryableError

T = TypeVar("T")

DEFAULT_SQLITE_FILE = "wireway.db"
JSON_DECLTYPES = ("JSON", "JSONB", "JSON_TEXT")
BUSY_TIMEOUT_MS = 5000
CONNECT_TIMEOUT = 5.0
PING_TIMEOUT = 3.0
POOL_MIN, POOL_MAX = 1, 4
SQLITE_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


class RejectedData(PermanentError):
    """The database refused the data itself; sending it again cannot help."""


class QueryFailed(RetryableError):
    """A statement failed for a reason a later attempt may not have."""


class Json:
    """An argument to store as JSON whatever its Python type (dict and list need no wrapper)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Json({self.value!r})"


# ----- values -------------------------------------------------------------------------
def json_text(value: Any) -> str:
    """`value` as compact JSON text."""
    return msgspec.json.encode(value).decode()


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds (truncated); a naive datetime is taken as UTC."""
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:23] + "Z"  # years are 4 digits


_UTC_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z")
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?$")


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime (no offset means UTC).

    Raises:
        ValueError: not an RFC 3339 timestamp.
    """
    if type(text) is str and _UTC_Z.fullmatch(text):
        # the common form (UTC `Z`, at most 6 fraction digits): Python reads it as is,
        # exactly as the general path below would
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from None
    m = _RFC3339.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    day, clock, fraction, offset = m.groups()
    iso = text  # Python 3.11 reads `Z` and up to 6 fraction digits itself
    if (fraction and len(fraction) > 6) or offset == "z" or text[10] != "T":
        iso = f"{day}T{clock}" + (f".{fraction[:6]}" if fraction else "")
        iso += "" if offset in (None, "Z", "z") else offset
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC) if dt.utcoffset() else dt


def _out(value: Any) -> Any:
    t = type(value)
    if t is datetime:
        return format_timestamp(value)
    if t is date:
        return value.isoformat()
    return value


# ----- URLs ---------------------------------------------------------------------------
def mask_url(url: str) -> str:
    """The URL with any password replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def parse_url(url: str, *, data_dir: Path) -> tuple[str, str]:
    """(dialect, target): the SQLite file path (or `:memory:`) or the PostgreSQL DSN.

    Raises:
        ValueError: not a URL this layer understands.
    """
    text = url.strip()
    if text in ("", "sqlite:", "sqlite://"):
        return "sqlite", os.path.abspath(data_dir / DEFAULT_SQLITE_FILE)
    if text.startswith("sqlite:///"):
        rest = text[len("sqlite:///") :]
        if not rest or rest.endswith("/"):
            raise ValueError(f"expected a file after sqlite:/// in {url!r}")
        if rest == ":memory:":
            return "sqlite", rest
        return "sqlite", os.path.abspath(rest)  # relative to the working directory
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql", text
    raise ValueError(
        f"unsupported database URL {mask_url(url)!r} "
        "(expected sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host/db)"
    )


def open_database(url: str, *, data_dir: Path) -> Database:
    """A `Database` for a URL (nothing is opened yet).

    `sqlite:///relative/path.db` (relative to the working directory),
    `sqlite:////abs/path.db`, `sqlite://` or an empty URL (`<data_dir>/wireway.db`),
    `postgresql://user:password@host:port/db` or `postgres://...` (query parameters
    asyncpg does not know, such as `?search_path=myschema`, become server settings).

    Raises:
        ValueError: an unsupported URL.
    """
    dialect, target = parse_url(url, data_dir=data_dir)
    if dialect == "sqlite":
        shown = url if url.strip() not in ("", "sqlite:", "sqlite://") else f"sqlite:///{target}"
        return SqliteDatabase(target, shown)
    return PostgresDatabase(target, mask_url(url))


# ----- the interface --------------------------------------------------------------------
class Queries(ABC):
    """What a `Database` and a `Tx` both offer."""

    dialect: str = ""

    @abstractmethod
    async def execute(self, sql: str, *args: Any) -> str:
        """Run one statement; returns its status (`INSERT 0 3`, `UPDATE 1`, ...)."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row (all rows in one transaction)."""

    @abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Every row of a query, as dicts."""

    @abstractmethod
    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        """The first row of a query, or None."""

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or None."""
        row = await self.fetchrow(sql, *args)
        return next(iter(row.values())) if row else None


class Tx(Queries):
    """The statements of one transaction (from `Database.transaction()`)."""

    @abstractmethod
    def savepoint(self) -> AbstractAsyncContextManager[Tx]:
        """A nested block that is rolled back alone if it raises (SAVEPOINT)."""

    @property
    def connection(self) -> Any:
        """The driver's connection (asyncpg only; None for SQLite)."""
        return None


class Database(Queries):
    """A connection (SQLite) or a pool (PostgreSQL) to one database."""

    url: str = ""

    @property
    @abstractmethod
    def is_open(self) -> bool: ...

    @abstractmethod
    async def open(self) -> None:
        """Connect; raises `NotConnected` with a clear message if it cannot."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> bool:
        """A cheap liveness check (connects if needed); never raises."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A transaction: committed when the block ends, rolled back if it raises."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


# ----- SQLite ---------------------------------------------------------------------------
_SQLITE_TOKENS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*"""  # left alone
    r"""|\$(\d+)"""  # $n -> ?n
    r"""|::[A-Za-z_][A-Za-z0-9_]*(?:\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\[\])?"""  # cast: dropped
    r"""|\bnow\(\s*\)""",  # now() -> RFC 3339 text
    re.IGNORECASE,
)


def _sqlite_token(m: re.Match[str]) -> str:
    if m.group(1):
        return "?" + m.group(1)
    token = m.group(0)
    if token.startswith("::"):
        return ""
    if token[0] in "'\"-":
        return token
    return SQLITE_NOW


@lru_cache(maxsize=1024)
def sqlite_sql(sql: str) -> str:
    """A PostgreSQL-style statement rewritten for SQLite (see the module docstring)."""
    return _SQLITE_TOKENS.sub(_sqlite_token, sql)


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
                d[name] = _out(d[name])
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


# ----- PostgreSQL -----------------------------------------------------------------------
def translate_pg(exc: BaseException) -> ConnectorError:
    """The wireway error for an asyncpg (or socket) exception."""
    if isinstance(exc, ConnectorError):
        return exc
    text = str(exc) or type(exc).__name__
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        detail = getattr(exc, "detail", None)
        if detail and detail not in text:
            text = f"{text} ({detail})"
        if isinstance(exc, asyncpg.PostgresConnectionError) or state.startswith("08"):
            return NotConnected(f"PostgreSQL: {text}")
        if state in ("57P01", "57P02", "57P03"):  # shutting down, crashed, starting up
            return NotConnected(f"PostgreSQL: {text}")
        if state[:2] in ("22", "23"):  # data exception, integrity constraint violation
            return RejectedData(text)
        return QueryFailed(f"PostgreSQL: {text}")
    if isinstance(exc, asyncpg.InterfaceError):
        if "closed" in text or "closing" in text:
            return NotConnected(f"PostgreSQL: {text}")
        return QueryFailed(f"PostgreSQL: {text}")
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # seen when the server ended the session while the connection sat in the pool
        return NotConnected(f"PostgreSQL: connection in an unusable state: {text}")
    if isinstance(exc, TimeoutError):
        return QueryFailed("PostgreSQL: timed out")
    if isinstance(exc, OSError):
        return NotConnected(f"PostgreSQL: {text}")
    return QueryFailed(f"PostgreSQL: {type(exc).__name__}: {text}")


PG_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)
_PG_OR_CONNECTOR_ERRORS: tuple[type[BaseException], ...] = (*PG_ERRORS, ConnectorError)


def _pg_value(value: Any) -> Any:
    if isinstance(value, Json):
        return value.value
    if type(value) is datetime and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _pg_args(args: Sequence[Any]) -> list[Any]:
    return [_pg_value(a) for a in args]


def _pg_rows(records: Sequence[Any]) -> list[dict[str, Any]]:
    return [{k: _out(v) for k, v in r.items()} for r in records]


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + msgspec.json.encode(value)  # jsonb binary format: version 1, then text


def _jsonb_decode(data: bytes) -> Any:
    return msgspec.json.decode(data[1:])


async def _pg_reset(conn: Any) -> None:
    """Nothing to undo on release: wireway leaves no session state (no SET, LISTEN,
    advisory lock or open cursor), and the pool rolls back an open transaction itself.
    The default reset is one more statement and round trip per batch."""


async def _pg_init(conn: Any) -> None:
    """Binary JSON codecs on every pooled connection (binary, so COPY can use them too)."""
    await conn.set_type_codec(
        "jsonb",
        encoder=_jsonb_encode,
        decoder=_jsonb_decode,
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        encoder=msgspec.json.encode,
        decoder=msgspec.json.decode,
        schema="pg_catalog",
        format="binary",
    )


class PostgresDatabase(Database):
    """PostgreSQL through an asyncpg pool."""

    dialect = "postgresql"

    def __init__(self, dsn: str, url: str) -> None:
        self.dsn = dsn
        self.url = url
        self._pool: Any = None
        self._opening = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self) -> None:
        async with self._opening:
            if self._pool is not None:
                return
            try:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=POOL_MIN,
                    max_size=POOL_MAX,
                    timeout=CONNECT_TIMEOUT,
                    init=_pg_init,
                    reset=_pg_reset,
                )
            except PG_ERRORS as exc:
                raise NotConnected(
                    f"cannot connect to PostgreSQL at {self.url}: {translate_pg(exc)}"
                ) from exc

    async def close(self) -> None:
        async with self._opening:
            pool, self._pool = self._pool, None
            if pool is None:
                return
            try:
                await asyncio.wait_for(pool.close(), 5.0)
            except PG_ERRORS:  # TimeoutError is one of them
                pool.terminate()

    async def pool(self) -> Any:
        """The asyncpg pool, opened if needed."""
        if self._pool is None:
            await self.open()
        return self._pool

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT), self.acquire() as conn:
                await conn.fetchval("SELECT 1")
        except _PG_OR_CONNECTOR_ERRORS:
            return False
        return True

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        """A pooled connection; errors are translated and a broken connection is discarded."""
        pool = await self.pool()
        try:
            conn = await pool.acquire()
        except PG_ERRORS as exc:
            raise translate_pg(exc) from exc
        try:
            yield conn
        except PG_ERRORS as exc:
            error = translate_pg(exc)
            if isinstance(error, NotConnected):
                await self._discard(pool, conn)
            raise error from exc
        except NotConnected:
            await self._discard(pool, conn)
            raise
        finally:
            with suppress(*PG_ERRORS):
                await pool.release(conn)

    @staticmethod
    async def _discard(pool: Any, conn: Any) -> None:
        """Drop a broken connection, and the idle ones (likely gone too): reconnect on use."""
        with suppress(*PG_ERRORS):  # already detached by asyncpg when its socket closed
            conn.terminate()
        with suppress(*PG_ERRORS):
            await pool.expire_connections()

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.acquire() as conn:
            return str(await conn.execute(sql, *_pg_args(args)))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self.acquire() as conn:
            return _pg_rows(await conn.fetch(sql, *_pg_args(args)))

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        async with self.acquire() as conn:
            row = await conn.fetchrow(sql, *_pg_args(args))
        return _pg_rows([row])[0] if row is not None else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self.acquire() as conn:
            tr = conn.transaction()
            await tr.start()
            try:
                yield PostgresTx(conn)
            except BaseException:
                with suppress(*PG_ERRORS):
                    await asyncio.shield(tr.rollback())
                raise
            await tr.commit()


class PostgresTx(Tx):
    """Statements on the one pooled connection of a transaction."""

    dialect = "postgresql"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @property
    def connection(self) -> Any:
        return self.conn

    async def execute(self, sql: str, *args: Any) -> str:
        try:
            return str(await self.conn.execute(sql, *_pg_args(args)))
        except PG_ERRORS as exc:
            raise translate_pg(exc) from exc

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self.conn.executemany(sql, [_pg_args(r) for r in rows])
        except PG_ERRORS as exc:
            raise translate_pg(exc) from exc

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        try:
            return _pg_rows(await self.conn.fetch(sql, *_pg_args(args)))
        except PG_ERRORS as exc:
            raise translate_pg(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        try:
            row = await self.conn.fetchrow(sql, *_pg_args(args))
        except PG_ERRORS as exc:
            raise translate_pg(exc) from exc
        return _pg_rows([row])[0] if row is not None else None

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[Tx]:
        tr = self.conn.transaction()  # nested: a SAVEPOINT
        try:
            await tr.start()
        except PG_ERRORS as exc:
            raise translate_pg(exc) from exc
        try:
            yield self
        except BaseException:
            with suppress(*PG_ERRORS):
                await tr.rollback()
            raise
        try:
            await tr.commit()
        except PG_ERRORS as exc:
            raise translate_pg(exc) from exc
