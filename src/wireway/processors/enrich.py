"""`enrich`: add what a table knows about a message (a CSV/JSON file, SQL, or Redis)."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from wireway.envelope import Message
from wireway.errors import ConfigError
from wireway.expr import Expr, ExpressionError
from wireway.observability import logging as log
from wireway.processors import set_path
from wireway.processors.base import Processor, StepResult
from wireway.registry import register_processor

logger = log.get("enrich")
MISS = object()  # what a lookup found for a key the table does not have


class FileTable(msgspec.Struct, forbid_unknown_fields=True):
    """A CSV file (one row per key, the header names the columns) or a JSON file (an
    object of key -> record, or an array of records), read whole and read again when
    its modification time or size changes."""

    path: Annotated[str, Meta(description="the file, relative to the pattern file")]
    format: Annotated[Literal["csv", "json"] | None, Meta(description="default: by the extension")] = None
    key_column: Annotated[
        str | None,
        Meta(description="the column (array: the field) holding the key (default: the first column; `id`)"),
    ] = None
    check_every: Annotated[float, Meta(ge=0, description="seconds between checks for a change")] = 5.0


class SqlTable(msgspec.Struct, forbid_unknown_fields=True):
    """A query with one parameter, the key (`$1` for PostgreSQL, `?` for SQLite); its
    first row, as column -> value, is the record."""

    url: Annotated[
        str,
        Meta(
            description="`postgresql://user@host/db`, or an SQLite file: `sqlite:///path.db` or a path "
            "(relative to the pattern file), opened read-only"
        ),
    ]
    query: Annotated[str, Meta(description="e.g. `SELECT name, site FROM devices WHERE id = $1`")]


class RedisTable(msgspec.Struct, forbid_unknown_fields=True):
    """A Redis key per lookup key: `GET` (a JSON value is decoded) or `HGETALL`."""

    url: Annotated[str, Meta(description="Redis URL")] = "redis://127.0.0.1:6379/0"
    command: Annotated[Literal["get", "hgetall"], Meta(description="how the record is read")] = "get"
    prefix: Annotated[str, Meta(description="put before the key: `device:` reads `device:<key>`")] = ""


class Cache(msgspec.Struct, forbid_unknown_fields=True):
    """Recent lookups (misses included) kept in memory, for `sql` and `redis`."""

    size: Annotated[int, Meta(ge=0, description="most keys kept (0: no cache)")] = 10_000
    ttl: Annotated[float, Meta(ge=0, description="seconds a lookup is kept")] = 60.0


class EnrichConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `enrich`.

    Looks up the value of `key` (CEL over the message) in one table: `file`, `sql`
    or `redis`, and puts the record found into the payload under `target` (a dotted
    path inside the payload), or merges it into the payload's top level when there
    is no `target`. When the table has no record: `on_miss: pass` leaves the message
    as it is, `default` puts `default` in its place, `dlq` fails the message with the
    reason. A lookup that fails (the database cannot be reached) fails the message
    too, with the reason; `wireway dlq` can send it again.
    """

    key: Annotated[str, Meta(description="CEL expression for the lookup key")]
    file: Annotated[FileTable | None, Meta(description="a CSV or JSON file as the table")] = None
    sql: Annotated[SqlTable | None, Meta(description="a query on PostgreSQL or SQLite as the table")] = None
    redis: Annotated[RedisTable | None, Meta(description="Redis keys as the table")] = None
    target: Annotated[
        str | None, Meta(description="payload path of the record (default: merged at the top)")
    ] = None
    on_miss: Annotated[Literal["pass", "default", "dlq"], Meta(description="when no record is found")] = (
        "pass"
    )
    default: Annotated[Any, Meta(description="the record used for a miss with `on_miss: default`")] = None
    cache: Annotated[Cache, Meta(description="recent lookups of `sql` and `redis`")] = msgspec.field(
        default_factory=Cache
    )

    def __post_init__(self) -> None:
        if sum(t is not None for t in (self.file, self.sql, self.redis)) != 1:
            raise ValueError("Expected exactly one table: `file`, `sql` or `redis` - at `$.key`")


class TableError(Exception):
    """A table could not be read."""


class Table:
    """Finds records by key, several at a time."""

    async def close(self) -> None:
        return None

    async def fetch(self, keys: list[Any]) -> dict[Any, Any]:
        """key -> record or MISS for every key."""
        raise NotImplementedError


class FileLookup(Table):
    def __init__(self, config: FileTable, base_dir: Path) -> None:
        self.path = base_dir / config.path
        if not self.path.is_file():
            raise ConfigError(f"no such file: {self.path}", path="file.path")
        self.format = config.format or ("csv" if self.path.suffix.lower() == ".csv" else "json")
        self.key_column = config.key_column
        self.check_every = config.check_every
        self.clock: Callable[[], float] = time.monotonic
        self.next_check = self.clock() + self.check_every
        try:  # at load time, so that `wireway check` tells what is wrong with the table
            st = os.stat(self.path)
            self.records = self.read()
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}", path="file.path") from exc
        self.seen = (st.st_mtime_ns, st.st_size)

    def read(self) -> dict[str, Any]:
        if self.format == "csv":
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            column = self.key_column or (next(iter(rows[0])) if rows else "")
            return {row[column]: row for row in rows if row.get(column) is not None}
        data = json.loads(self.path.read_text())
        if isinstance(data, dict):
            return {str(k): v for k, v in data.items()}
        column = self.key_column or "id"
        return {str(r[column]): r for r in data if isinstance(r, dict) and column in r}

    async def refresh(self) -> None:
        """Read the file again if it changed (checked at most every `check_every` s)."""
        now = self.clock()
        if now < self.next_check:
            return
        self.next_check = now + self.check_every
        try:
            st = os.stat(self.path)
        except OSError:
            return  # being replaced: keep the records read last
        seen = (st.st_mtime_ns, st.st_size)
        if seen == self.seen:
            return
        try:
            self.records = await asyncio.to_thread(self.read)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            # half written, say: keep the records read last and try again at the next check
            logger.warning("cannot read an enrich table", path=str(self.path), error=str(exc))
            return
        self.seen = seen

    async def fetch(self, keys: list[Any]) -> dict[Any, Any]:
        await self.refresh()
        return {k: self.records.get(str(k), MISS) for k in keys}


class SqliteLookup(Table):
    def __init__(self, path: Path, query: str) -> None:
        self.path, self.query = path, query
        self.conn: sqlite3.Connection | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wireway-enrich")

    def _fetch(self, keys: list[Any]) -> dict[Any, Any]:
        if self.conn is None:
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
        found: dict[Any, Any] = {}
        for key in keys:
            row = self.conn.execute(self.query, (key,)).fetchone()
            found[key] = dict(row) if row is not None else MISS
        return found

    async def fetch(self, keys: list[Any]) -> dict[Any, Any]:
        try:
            return await asyncio.wrap_future(self.pool.submit(self._fetch, keys))
        except sqlite3.Error as exc:
            raise TableError(f"SQLite {self.path}: {exc}") from exc

    async def close(self) -> None:
        def close() -> None:
            if self.conn is not None:
                self.conn.close()

        await asyncio.wrap_future(self.pool.submit(close))
        self.pool.shutdown(wait=True)


class PostgresLookup(Table):
    def __init__(self, dsn: str, query: str) -> None:
        self.dsn, self.query = dsn, query
        self.pool: Any = None

    async def fetch(self, keys: list[Any]) -> dict[Any, Any]:
        import asyncpg

        try:
            if self.pool is None:
                self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4, timeout=10)
            rows = await asyncio.gather(*(self.pool.fetchrow(self.query, key) for key in keys))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise TableError(f"PostgreSQL: {exc}") from exc
        return {k: dict(row) if row is not None else MISS for k, row in zip(keys, rows, strict=True)}

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.close()


class RedisLookup(Table):
    def __init__(self, config: RedisTable) -> None:
        self.config = config
        self.client: Any = None

    async def fetch(self, keys: list[Any]) -> dict[Any, Any]:
        import redis.asyncio as aioredis
        import redis.exceptions

        if self.client is None:
            self.client = aioredis.from_url(self.config.url, decode_responses=True)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    name = f"{self.config.prefix}{key}"
                    pipe.get(name) if self.config.command == "get" else pipe.hgetall(name)
                values = await pipe.execute()
        except (redis.exceptions.RedisError, OSError) as exc:
            raise TableError(f"Redis: {exc}") from exc
        return {k: _redis_value(v) for k, v in zip(keys, values, strict=True)}

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()


def _redis_value(value: Any) -> Any:
    if value is None or value == {}:
        return MISS
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def sql_table(config: SqlTable, base_dir: Path) -> Table:
    url = config.url.strip()
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresLookup(url, config.query)
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    if not path or "://" in path:
        raise ConfigError("expected postgresql://..., sqlite:///path.db or a file path", path="sql.url")
    return SqliteLookup(base_dir / path, config.query)


class LookupCache:
    """Recent lookups, least recently used forgotten first, each kept `ttl` seconds."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size, self.ttl = size, ttl
        self.items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self.clock: Callable[[], float] = time.monotonic

    def get(self, key: Any) -> Any:
        """The record, MISS, or None when not cached."""
        item = self.items.get(key)
        if item is None:
            return None
        if item[0] <= self.clock():
            del self.items[key]
            return None
        self.items.move_to_end(key)
        return item[1]

    def put(self, key: Any, value: Any) -> None:
        if self.size == 0 or self.ttl == 0:
            return
        self.items[key] = (self.clock() + self.ttl, value)
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


@register_processor("enrich", config=EnrichConfig)
class Enrich(Processor):
    """Add the record a table has for each message's key."""

    def __init__(self, config: EnrichConfig, *, base_dir: Path) -> None:
        try:
            self.key = Expr(config.key)
        except ExpressionError as exc:
            raise ConfigError(str(exc), path="key") from exc
        self.table: Table
        if config.file is not None:
            self.table = FileLookup(config.file, base_dir)
        elif config.sql is not None:
            self.table = sql_table(config.sql, base_dir)
        else:
            assert config.redis is not None
            self.table = RedisLookup(config.redis)
        self.cache = None if config.file is not None else LookupCache(config.cache.size, config.cache.ttl)
        self.target = config.target
        self.on_miss = config.on_miss
        self.default = config.default

    async def stop(self) -> None:
        await self.table.close()

    async def lookup(self, keys: list[Any]) -> dict[Any, Any]:
        """key -> record or MISS; raises TableError."""
        if self.cache is None:
            return await self.table.fetch(keys)
        found: dict[Any, Any] = {}
        wanted = []
        for key in keys:
            value = self.cache.get(key)
            if value is None:
                wanted.append(key)
            else:
                found[key] = value
        if wanted:
            fetched = await self.table.fetch(wanted)
            for key, value in fetched.items():
                self.cache.put(key, value)
            found.update(fetched)
        return found

    async def process(self, batch: list[Message]) -> StepResult:
        failed: list[tuple[Message, list[str]]] = []
        keyed: list[tuple[Message, Any]] = []
        for msg in batch:
            try:
                key = self.key.evaluate(msg.to_context())
                hash(key)
            except Exception as exc:  # noqa: BLE001  (CEL evaluation error, or a list/map key)
                failed.append((msg, [f"enrich: cannot evaluate key: {exc}"]))
                continue
            keyed.append((msg, key))
        if not keyed:
            return StepResult([], failed)
        try:
            records = await self.lookup(list(dict.fromkeys(key for _, key in keyed)))
        except TableError as exc:
            return StepResult([], failed + [(msg, [f"enrich: lookup failed: {exc}"]) for msg, _ in keyed])
        passed: list[Message] = []
        for msg, key in keyed:
            record = records.get(key, MISS)
            if record is MISS:
                if self.on_miss == "pass":
                    passed.append(msg)
                    continue
                if self.on_miss == "dlq":
                    failed.append((msg, [f"enrich: no record for key {key!r}"]))
                    continue
                record = self.default
            enriched = self.merge(msg, record)
            if isinstance(enriched, str):
                failed.append((msg, [enriched]))
            else:
                passed.append(enriched)
        return StepResult(passed, failed)

    def merge(self, msg: Message, record: Any) -> Message | str:
        """The message with the record in its payload, or why it cannot be put there."""
        payload = msg.payload
        if self.target is None:
            if not isinstance(record, dict):
                return f"enrich: a {type(record).__name__} record cannot be merged into the payload"
            if not isinstance(payload, dict):
                return "enrich: the payload is not an object"
            return msgspec.structs.replace(msg, payload={**payload, **record})
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            return "enrich: the payload is not an object"
        payload = dict(payload)
        set_path(payload, self.target, record)
        return msgspec.structs.replace(msg, payload=payload)
