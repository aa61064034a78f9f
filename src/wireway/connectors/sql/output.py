"""The `sql` output: insert messages as rows of a SQLite or PostgreSQL table."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from wireway.config.model import Interface, Pattern
from wireway.connectors.base import Output
from wireway.connectors.sql import copytext
from wireway.connectors.sql.config import MISSING, Getter, SqlOutputConfig, compile_path
from wireway.connectors.sql.db import (
    PG_ERRORS,
    Database,
    PostgresDatabase,
    QueryFailed,
    RejectedData,
    format_timestamp,
    json_text,
    open_database,
    parse_timestamp,
    translate_pg,
)
from wireway.envelope import Message
from wireway.errors import ConnectorError, NotConnected
from wireway.observability import logging as log
from wireway.registry import register_output

logger = log.get("sql")
_encode = msgspec.json.Encoder().encode
WATCH_INTERVAL = 5.0  # seconds between liveness checks (and reconnects) of the database
COPY_PAUSE = 60.0  # seconds without COPY after a batch met rows already stored
# Below this many messages a batch is one INSERT: a COPY takes two round trips and
# about 110 us more of the client's CPU per call in asyncpg (the event loop's, where
# wireway has least to spare), while it saves PostgreSQL nothing for one message, about
# as much as it costs for four and a third of the server's CPU for 16
# (`benchmarks/pg_store.py --batch 1`, 4, 16, each `--path`).
COPY_MIN_MESSAGES = 8


class Unfit(ValueError):
    """A value that does not fit its column."""


@dataclass
class ColumnInfo:
    """One column of the target table, as the database describes it."""

    name: str
    kind: str  # text int float numeric bool json timestamptz timestamp date any
    notnull: bool = False
    maxlen: int | None = None
    low: int = -(2**63)
    high: int = 2**63 - 1
    dbtype: str = ""  # PostgreSQL: the type's name (varchar, int4, jsonb, ...)


_PG_INT_RANGE = {"int2": 15, "int4": 31, "int8": 63}
_PG_KINDS = {
    "varchar": "text",
    "bpchar": "text",
    "text": "text",
    "name": "text",
    "citext": "text",
    "float4": "float",
    "float8": "float",
    "numeric": "numeric",
    "bool": "bool",
    "json": "json",
    "jsonb": "json",
    "timestamptz": "timestamptz",
    "timestamp": "timestamp",
    "date": "date",
}
_DESCRIBE_PG = """
SELECT a.attname AS name, t.typname AS typname, a.attnotnull AS notnull,
       CASE WHEN t.typname IN ('varchar', 'bpchar') AND a.atttypmod > 4
            THEN a.atttypmod - 4 END AS maxlen
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_LENGTH = re.compile(r"\(\s*(\d+)\s*\)")


def _sqlite_kind(declared: str) -> str:
    d = declared.upper()
    if "JSON" in d:
        return "json"
    if "INT" in d:
        return "int"
    if "CHAR" in d or "CLOB" in d or "TEXT" in d:
        return "text"
    if "REAL" in d or "FLOA" in d or "DOUB" in d or "NUMERIC" in d or "DECIMAL" in d:
        return "float"
    if "BOOL" in d:
        return "bool"
    if "TIMESTAMP" in d or "DATETIME" in d:
        return "timestamp"
    if d == "DATE":
        return "date"
    return "any"


async def describe(db: Database, table: str) -> dict[str, ColumnInfo]:
    """The columns of a table; raises QueryFailed if there is no such table."""
    found: dict[str, ColumnInfo] = {}
    if db.dialect == "postgresql":
        for r in await db.fetch(_DESCRIBE_PG, table):
            typname = str(r["typname"])
            info = ColumnInfo(str(r["name"]), _PG_KINDS.get(typname, "any"), bool(r["notnull"]))
            info.maxlen, info.dbtype = r["maxlen"], typname
            if typname in _PG_INT_RANGE:
                bits = _PG_INT_RANGE[typname]
                info.kind, info.low, info.high = "int", -(2**bits), 2**bits - 1
            found[info.name] = info
    else:
        schema, _, name = table.rpartition(".")
        pragma = f"PRAGMA {schema + '.' if schema else ''}table_info({name})"
        for r in await db.fetch(pragma):
            declared = str(r["type"] or "")
            info = ColumnInfo(str(r["name"]), _sqlite_kind(declared), bool(r["notnull"]))
            length = _LENGTH.search(declared)
            if info.kind == "text" and length:
                info.maxlen = int(length.group(1))
            found[info.name] = info
    if not found:
        raise QueryFailed(f"table {table} does not exist in {db.url}")
    return found


# ----- values -> column values ----------------------------------------------------------
def _tname(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", str: "a string"}.get(
        type(value), type(value).__name__
    )


def _as_datetime(value: Any) -> datetime:
    if type(value) is datetime:
        return value
    if type(value) is str:
        try:
            return parse_timestamp(value)
        except ValueError:
            pass
    raise Unfit(f"expected an RFC 3339 timestamp, got {value!r:.60}")


Coerce = Callable[[Any], Any]


def coercer(info: ColumnInfo, dialect: str) -> Coerce:
    """The function that checks and converts a (non-null) value for one column."""
    kind, pg = info.kind, dialect == "postgresql"
    if kind == "text":
        maxlen = info.maxlen

        def text(v: Any) -> Any:
            t = type(v)
            if t is str:
                s = v
            elif t is int or t is float:
                s = str(v)
            elif t is datetime:
                s = format_timestamp(v)
            else:
                raise Unfit(f"expected a string, got {_tname(v)}")
            if maxlen is not None and len(s) > maxlen:
                raise Unfit(f"longer than {maxlen} characters ({len(s)})")
            return s

        return text
    if kind == "int":
        low, high = info.low, info.high

        def integer(v: Any) -> Any:
            t = type(v)
            if t is int:
                n = v
            elif t is float and v.is_integer():
                n = int(v)
            else:
                raise Unfit(f"expected an integer, got {_tname(v)}")
            if not low <= n <= high:
                raise Unfit(f"{n} is out of range")
            return n

        return integer
    if kind in ("float", "numeric"):
        to_number: Callable[[Any], Any] = (lambda v: Decimal(repr(v))) if pg and kind == "numeric" else float

        def number(v: Any) -> Any:
            t = type(v)
            if t is int or t is float:
                return to_number(v)
            raise Unfit(f"expected a number, got {_tname(v)}")

        return number
    if kind == "bool":

        def boolean(v: Any) -> Any:
            if type(v) is bool:
                return v
            raise Unfit(f"expected true or false, got {_tname(v)}")

        return boolean
    if kind == "json":
        return (lambda v: v) if pg else json_text  # PostgreSQL: the pool's jsonb codec
    if kind == "json_text":
        return json_text
    if kind == "timestamptz" and pg:
        return _as_datetime
    if kind == "timestamp" and pg:
        return lambda v: _as_datetime(v).replace(tzinfo=None)
    if kind in ("timestamptz", "timestamp", "timestamp_text"):
        return lambda v: format_timestamp(_as_datetime(v))
    if kind == "date":

        def day(v: Any) -> Any:
            if type(v) is str and len(v) == 10:
                try:
                    d = date.fromisoformat(v)
                except ValueError:
                    raise Unfit(f"expected a date, got {v!r:.60}") from None
            else:
                d = _as_datetime(v).date()
            return d if pg else d.isoformat()

        return day
    if pg:
        return lambda v: v
    return lambda v: json_text(v) if type(v) in (dict, list) else v


# ----- the plan: how messages become rows -----------------------------------------------
Convert = Callable[[Any], Any]  # a fetched value (or MISSING) -> the column value; raises Unfit
TIMESTAMP_CACHE = 4096  # timestamp texts remembered per column (a batch shares received_at)


@dataclass
class Column:
    name: str
    path: str
    get: Getter
    optional: bool
    notnull: bool
    coerce: Coerce
    convert: Convert = field(init=False, repr=False)  # fetched value -> column value

    def __post_init__(self) -> None:
        self.convert = checked(self)  # Plan puts a fast path for the column's kind in front


def checked(col: Column) -> Convert:
    """The full conversion of a fetched value: missing, null, then the column's coercer."""
    name, path, optional, notnull, coerce = col.name, col.path, col.optional, col.notnull, col.coerce

    def convert(v: Any) -> Any:
        if v is MISSING:
            if not optional:
                raise Unfit(f"column `{name}`: `{path}` is missing")
            v = None
        if v is None:
            if notnull:
                raise Unfit(f"column `{name}`: `{path}` is null (NOT NULL column)")
            return None
        try:
            return coerce(v)
        except Unfit as exc:
            raise Unfit(f"column `{name}` (`{path}`): {exc}") from None

    return convert


def fast_converter(col: Column, spec: ColumnInfo, dialect: str) -> Convert:
    """`checked(col)`, with the common case of the column's kind answered first.

    The fast paths return exactly what `checked` would; anything else (a missing or
    null value, another type, a text too long) goes through `checked` for its error.
    """
    slow = checked(col)
    kind = spec.kind
    if kind == "text":
        maxlen = spec.maxlen if spec.maxlen is not None else sys.maxsize

        def text(v: Any) -> Any:
            if type(v) is str and len(v) <= maxlen:
                return v
            return slow(v)

        return text
    if dialect == "postgresql" and kind in ("json", "any"):  # passed on as is

        def as_is(v: Any) -> Any:
            if v is not None and v is not MISSING:
                return v
            return slow(v)

        return as_is
    if kind in ("timestamptz", "timestamp", "timestamp_text"):
        return remembered(col.coerce, slow)
    return slow


def remembered(coerce: Coerce, slow: Convert) -> Convert:
    """A timestamp column's conversion, remembering its results for texts.

    Timestamps repeat (one `received_at` per batch, one `timestamp` on the readings of
    several sensor topics) and parsing is the dear part. A text is neither missing nor
    null, so `coerce` alone converts it; a text it refuses goes to `slow` for the error
    message. Results (datetime or str) are immutable; refusals are not remembered.
    """
    memo: dict[str, Any] = {}

    def convert(v: Any) -> Any:
        if type(v) is not str:
            return slow(v)
        hit = memo.get(v)
        if hit is None:
            try:
                hit = coerce(v)
            except Unfit:
                return slow(v)
            if len(memo) >= TIMESTAMP_CACHE:
                memo.clear()
            memo[v] = hit
        return hit

    return convert


_KEY, _VALUE, _PATH = 0, 1, 2  # where an entry column's value comes from

# ----- PostgreSQL: a batch as one JSON document ------------------------------------------
# COPY costs the client ~3 us of CPU per row (asyncpg's record encoding); one jsonb
# parameter holding every row, split by jsonb_array_elements on the server, costs a
# fraction of that (one msgspec call) for the same server work. Only for columns whose
# values reach the table exactly as COPY would put them there: (database type, kind)
# -> the SELECT expression of element `{i}` of a row `r`.
_JSON_COLUMNS = {
    ("text", "text"): "r->>{i}",
    ("text", "timestamp_text"): "r->>{i}",
    ("text", "json_text"): "r->>{i}",
    ("varchar", "text"): "r->>{i}",
    ("varchar", "timestamp_text"): "r->>{i}",
    ("varchar", "json_text"): "r->>{i}",
    ("int2", "int"): "(r->>{i})::int2",
    ("int4", "int"): "(r->>{i})::int4",
    ("int8", "int"): "(r->>{i})::int8",
    ("bool", "bool"): "(r->>{i})::bool",
    # an aware UTC datetime, not the first or last one (checked per batch: asyncpg reads
    # a naive one as local time, and sends those two as -infinity and infinity)
    ("timestamptz", "timestamptz"): "(r->>{i})::timestamptz",
    # JSON null is SQL NULL, as None is; a top-level NaN or infinity (JSON null too, but
    # a jsonb null through COPY) is checked per batch
    ("jsonb", "json"): "NULLIF(r->{i}, 'null'::jsonb)",
}
_JSON_ERRORS = (msgspec.EncodeError, TypeError, ValueError, OverflowError)


def json_select(types: list[tuple[str, str]]) -> str | None:
    """The SELECT list over `r` for columns of these (database type, kind), or None
    when one of them must go through COPY."""
    exprs = []
    for i, key in enumerate(types):
        expr = _JSON_COLUMNS.get(key)
        if expr is None:
            return None
        exprs.append(expr.format(i=i))
    return ", ".join(exprs)


def _json_exact(rows: list[tuple[Any, ...]], aware: list[int], jsonb: list[int]) -> bool:
    """True when JSON carries every value of these columns as COPY would."""
    for i in aware:
        seen = None  # the rows of one message share its values: check each once
        for row in rows:
            v = row[i]
            if v is seen or v is None:
                continue
            if not copytext.exact_utc(v):
                return False
            seen = v
    for i in jsonb:
        for row in rows:
            v = row[i]
            if type(v) is float and not math.isfinite(v):
                return False
    return True


class Plan:
    """Compiled once per table description: messages -> row tuples, and the statements."""

    def __init__(self, config: SqlOutputConfig, dialect: str, table: dict[str, ColumnInfo]) -> None:
        self.config = config
        self.columns: list[Column] = []
        types: list[tuple[str, str]] = []  # (database type, kind) per column
        lower = {name.lower(): info for name, info in table.items()}
        for name, path in config.columns.items():
            info = table.get(name) or lower.get(name.lower())
            if info is None:
                raise QueryFailed(f"table {config.table} has no column `{name}`")
            kind = info.kind
            if name in config.timestamp_columns and kind not in ("timestamptz", "timestamp"):
                kind = "date" if kind == "date" else "timestamp_text"
            if name in config.json_columns and kind != "json":
                kind = "json_text"
            spec = ColumnInfo(info.name, kind, info.notnull, info.maxlen, info.low, info.high, info.dbtype)
            types.append((info.dbtype, kind))
            get, optional = compile_path(path)
            col = Column(info.name, path, get, optional, info.notnull, coercer(spec, dialect))
            col.convert = fast_converter(col, spec, dialect)
            self.columns.append(col)
        self._batch_cols: list[tuple[int, Getter, Convert]] = []
        # (index, payload field or None, getter, convert): a top-level payload field is
        # read inline, without the getter's call
        self._message_cols: list[tuple[int, str | None, Getter, Convert]] = []
        # (index, source, getter, convert): the entry's key or value is taken inline
        self._entry_cols: list[tuple[int, int, Getter, Convert]] = []
        for i, col in enumerate(self.columns):
            body = col.path.rstrip("?")
            head, _, rest = body.partition(".")
            if head == "$now":
                self._batch_cols.append((i, col.get, col.convert))
            elif head in ("$key", "$value"):
                source = {"$key": _KEY, "$value": _VALUE}.get(body, _PATH)
                self._entry_cols.append((i, source, col.get, col.convert))
            else:
                top = rest if head == "payload" and rest and "." not in rest else None
                self._message_cols.append((i, top, col.get, col.convert))
        self._now: datetime | None = None
        self._template: list[Any] = []
        self.explode: Getter | None = None
        if config.explode:
            self.explode = compile_path(config.explode)[0]
        self.names = [c.name for c in self.columns]
        cols = ", ".join(f'"{n}"' for n in self.names)
        conflict = " ON CONFLICT DO NOTHING" if config.on_conflict == "ignore" else ""
        marks = ", ".join(f"${i + 1}" for i in range(len(self.columns)))
        table_name = config.table
        self.insert = f"INSERT INTO {table_name} ({cols}) VALUES ({marks}){conflict}"
        digest = hashlib.sha1(f"{table_name}|{cols}".encode()).hexdigest()[:12]
        self.stage = f"wireway_stage_{digest}"
        self.create_stage = (
            f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {cols} FROM {table_name} WITH NO DATA"
        )
        self.from_stage = f"INSERT INTO {table_name} ({cols}) SELECT {cols} FROM {self.stage}{conflict}"
        select = json_select(types) if dialect == "postgresql" else None
        self.from_json: str | None = None
        if select is not None:
            self.from_json = (
                f"INSERT INTO {table_name} ({cols}) SELECT {select}"
                f" FROM jsonb_array_elements($1::text::jsonb) AS r{conflict}"
            )
        self._aware = [i for i, t in enumerate(types) if t[0] == "timestamptz"]
        self._jsonb = [i for i, t in enumerate(types) if t[0] == "jsonb"]
        # PostgreSQL's cheapest way in, when every column can take it
        fns = copytext.writers(types) if dialect == "postgresql" else None
        shared = [i for i, _, _ in self._batch_cols] + [i for i, _, _, _ in self._message_cols]
        self.copy = None if fns is None else copytext.Layout(self.names, fns, shared)
        schema, _, name = table_name.rpartition(".")
        self.copy_table = (schema or None, name)

    def json_rows(self, rows: list[tuple[Any, ...]]) -> str | None:
        """The rows as one JSON array for `from_json`, or None when they need COPY."""
        if self.from_json is None or not _json_exact(rows, self._aware, self._jsonb):
            return None
        try:
            return _encode(rows).decode()
        except _JSON_ERRORS:  # say a lone surrogate: COPY reports it as before
            return None

    def rows(self, msg: Message, now: datetime) -> list[tuple[Any, ...]]:
        """The rows of one message; raises Unfit naming the column and the path.

        `$now` columns are converted once per batch (`now`) and envelope paths once per
        message; only `$key` / `$value` columns are converted per exploded entry.
        """
        if now is not self._now:
            self._now = now
            self._template = [None] * len(self.columns)
            for i, get, convert in self._batch_cols:
                self._template[i] = convert(get(msg, None, None, now))
        row = self._template.copy()
        payload = msg.payload
        fields = payload if type(payload) is dict else {}  # a field of a non-object is missing
        for i, top, get, convert in self._message_cols:
            if top is not None:
                row[i] = convert(fields.get(top, MISSING))
            else:
                row[i] = convert(get(msg, None, None, now))
        if self.explode is None:
            return [tuple(row)]
        obj = self.explode(msg, None, None, now)
        if type(obj) is dict:
            entries: Any = obj.items()
        elif type(obj) is list:
            entries = enumerate(obj)
        else:
            where = self.config.explode
            if obj is MISSING:
                raise Unfit(f"`{where}` is missing")
            raise Unfit(f"`{where}` is {_tname(obj)}, not an object")
        rows = []
        entry_cols = self._entry_cols
        for key, value in entries:
            try:
                for i, source, get, convert in entry_cols:
                    if source == _KEY:
                        row[i] = convert(key)
                    elif source == _VALUE:
                        row[i] = convert(value)
                    else:
                        row[i] = convert(get(msg, key, value, now))
            except Unfit as exc:
                raise Unfit(f"{self.config.explode}.{key}: {exc}") from None
            rows.append(tuple(row))
        if not rows:
            raise Unfit(f"`{self.config.explode}` is empty: nothing to write")
        return rows


@register_output("sql", config=SqlOutputConfig)
class SqlOutput(Output):
    """Insert messages as rows of a SQL table (SQLite or PostgreSQL).

    `db` is the output's `Database`, for an application to share; it opens lazily and
    is closed when the output closes.
    """

    config: SqlOutputConfig

    def __init__(self, config: SqlOutputConfig, iface: Interface, pattern: Pattern) -> None:
        super().__init__(config, iface, pattern)
        data_dir = Path(os.environ.get("WIREWAY_DATA_DIR", "data"))
        self.db: Database = open_database(config.url, data_dir=data_dir)
        self.plan: Plan | None = None
        self.up = False
        self.written = 0
        self._preparing = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        self._copy_after = 0.0  # COPY is skipped until then (monotonic)

    async def open(self) -> None:
        """Connect, migrate and describe the table; a database that is down is retried later."""
        try:
            await self.prepare()
        except NotConnected as exc:
            logger.warning("database unavailable; will retry", output=self.name, error=str(exc))
        self._watch = asyncio.create_task(self.watch(), name=f"wireway[{self.name}].ping")

    async def prepare(self) -> Plan:
        async with self._preparing:
            if self.plan is not None:
                return self.plan
            try:
                await self.db.open()
                if self.config.migrate == "sensor_readings":
                    from wireway.apps.sensor_ingest.migrations import migrate

                    await migrate(self.db)
                self.plan = Plan(self.config, self.db.dialect, await describe(self.db, self.config.table))
            except NotConnected:
                self.up = False
                raise
            self.up = True
            logger.info("sql output ready", output=self.name, url=self.db.url, table=self.config.table)
            return self.plan

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            self.up = await self.db.ping()
            if self.up and self.plan is None:
                with contextlib.suppress(ConnectorError):
                    await self.prepare()

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self.db.close()

    def health(self) -> dict[str, str]:
        return {"storage": "up" if self.up else "down"}

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        plan = self.plan or await self.prepare()
        now = datetime.now(UTC)
        refused: dict[int, str] = {}
        good: list[tuple[int, list[tuple[Any, ...]]]] = []
        for i, msg in enumerate(batch):
            try:
                good.append((i, plan.rows(msg, now)))
            except Unfit as exc:
                refused[i] = str(exc)
        try:
            if good:
                try:
                    await self.insert(plan, [rows for _, rows in good])
                except RejectedData as exc:
                    logger.warning(
                        "batch refused by the database; writing message by message",
                        output=self.name,
                        error=str(exc),
                    )
                    refused.update(await self.insert_each(plan, good))
        except NotConnected:
            self.up = False
            raise
        self.up = True
        self.written += sum(len(rows) for i, rows in good if i not in refused)
        return refused or None

    async def insert(self, plan: Plan, messages: list[list[tuple[Any, ...]]]) -> None:
        """Every row in one transaction. PostgreSQL: one text COPY (a batch of at least
        COPY_MIN_MESSAGES), or one INSERT ... SELECT from a JSON array of the rows, or COPY
        into a temporary table + INSERT ... SELECT; SQLite: executemany."""
        if (
            plan.copy is not None
            and len(messages) >= COPY_MIN_MESSAGES
            and time.monotonic() >= self._copy_after
        ):
            data = plan.copy.encode(messages)
            if data is not None and await self.copy(plan, data):
                return
        rows = [row for group in messages for row in group]
        document = plan.json_rows(rows) if self.db.dialect == "postgresql" else None
        if document is not None:
            # one statement is its own transaction: no BEGIN / COMMIT round trips
            assert isinstance(self.db, PostgresDatabase)
            async with self.db.acquire() as conn:
                await conn.execute(plan.from_json, document)
            return
        async with self.db.transaction() as tx:
            if self.db.dialect != "postgresql":
                await tx.executemany(plan.insert, rows)
                return
            conn = tx.connection
            try:
                await conn.execute(plan.create_stage)
                await conn.copy_records_to_table(plan.stage, records=rows, columns=plan.names)
                await conn.execute(plan.from_stage)
            except PG_ERRORS as exc:
                raise translate_pg(exc) from exc

    async def copy(self, plan: Plan, data: bytes) -> bool:
        """One COPY of the batch; False when a row was already there and `on_conflict: ignore`
        wants it skipped, which COPY cannot do: then the caller takes the INSERT path."""
        assert isinstance(self.db, PostgresDatabase)
        assert plan.copy is not None
        schema, table = plan.copy_table
        async with self.db.acquire() as conn:
            try:
                await conn.copy_to_table(
                    table,
                    schema_name=schema,
                    columns=plan.copy.names,
                    source=memoryview(data),  # bytes would be taken for a file name
                    format="text",
                )
            except asyncpg.UniqueViolationError:
                if plan.config.on_conflict != "ignore":
                    raise
                # a redelivery: this batch and those of the next minute skip COPY (more
                # are likely to follow, each would cost a failed COPY)
                self._copy_after = time.monotonic() + COPY_PAUSE
                return False
        return True

    async def insert_each(self, plan: Plan, good: list[tuple[int, list[tuple[Any, ...]]]]) -> dict[int, str]:
        """One savepoint per message, in one transaction: only refused messages are left out."""
        refused: dict[int, str] = {}
        async with self.db.transaction() as tx:
            for i, rows in good:
                try:
                    async with tx.savepoint():
                        await tx.executemany(plan.insert, rows)
                except RejectedData as exc:
                    refused[i] = f"refused by the database: {exc}"
        return refused
