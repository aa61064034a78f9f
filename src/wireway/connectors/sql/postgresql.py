"""PostgreSQL through an asyncpg pool of 1 to 4 connections.

JSON travels in binary form through codecs set on every pooled connection, so COPY
can use them too. A broken connection is dropped with the idle ones (likely broken
too) and the pool reconnects on the next use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from wireway.connectors.sql.base import (
    PING_TIMEOUT,
    Database,
    Json,
    QueryFailed,
    RejectedData,
    Tx,
    result_value,
)
from wireway.errors import ConnectorError, NotConnected

CONNECT_TIMEOUT = 5.0
POOL_MIN, POOL_MAX = 1, 4


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
    return [{k: result_value(v) for k, v in r.items()} for r in records]


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + msgspec.json.encode(value)  # jsonb binary format: version 1, then text


def _jsonb_decode(data: bytes) -> Any:
    return msgspec.json.decode(data[1:])


async def _pg_reset(conn: Any) -> None:
    """Nothing to undo on release: wireway leaves no session state (no SET, LISTEN,
    advisory lock or open cursor), and the pool rolls back an open transaction itself.
    The default reset is one more statement and round trip per batch."""


async def setup_connection(conn: Any) -> None:
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
                    init=setup_connection,
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
