"""The plan of one table: how messages become row tuples, and the statements that write them.

Compiled once per table description (when the output opens). `$now` columns are
converted once per batch, envelope paths once per message, and only `$key` /
`$value` columns once per exploded entry.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import msgspec

from wireway.connectors.sql import copytext
from wireway.connectors.sql.base import QueryFailed
from wireway.connectors.sql.columns import ColumnInfo
from wireway.connectors.sql.config import MISSING, Getter, SqlOutputConfig, compile_path
from wireway.connectors.sql.convert import Column, Convert, Unfit, coercer, fast_converter, type_name
from wireway.envelope import Message

_encode = msgspec.json.Encoder().encode
_KEY, _VALUE, _PATH = 0, 1, 2  # where an entry column's value comes from

# ----- PostgreSQL: a batch as one JSON document ------------------------------------------
# One jsonb parameter holding every row, split by jsonb_array_elements on the server,
# costs the client one msgspec call where binding each row costs it and the server
# far more. Only for columns whose values reach the table exactly as the INSERT's
# parameters would put them there: (database type, kind) -> the SELECT expression of
# element `{i}` of a row `r`.
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
    # JSON numbers are the shortest text that reads back as the same double; NaN, the
    # infinities (JSON null) and -0.0 are checked per batch
    ("float8", "float"): "(r->>{i})::float8",
    # an aware UTC datetime, not the first or last one (checked per batch: asyncpg reads
    # a naive one as local time, and sends those two as -infinity and infinity)
    ("timestamptz", "timestamptz"): "(r->>{i})::timestamptz",
    # JSON null is SQL NULL, as None is; a top-level NaN or infinity (JSON null too, but
    # a jsonb null as a parameter) is checked per batch
    ("jsonb", "json"): "NULLIF(r->{i}, 'null'::jsonb)",
}
_JSON_ERRORS = (msgspec.EncodeError, TypeError, ValueError, OverflowError)


def json_select(types: list[tuple[str, str]]) -> str | None:
    """The SELECT list over `r` for columns of these (database type, kind), or None
    when one of them cannot go as JSON."""
    exprs = []
    for i, key in enumerate(types):
        expr = _JSON_COLUMNS.get(key)
        if expr is None:
            return None
        exprs.append(expr.format(i=i))
    return ", ".join(exprs)


def _json_exact(rows: list[tuple[Any, ...]], aware: list[int], finite: list[int], floats: list[int]) -> bool:
    """True when JSON carries every value of these columns as the INSERT would: `aware`
    columns hold exact UTC datetimes, `finite` ones no top-level NaN or infinity, and
    `floats` (float8) finite numbers other than -0.0."""
    for i in aware:
        seen = None  # the rows of one message share its values: check each once
        for row in rows:
            v = row[i]
            if v is seen or v is None:
                continue
            if not copytext.exact_utc(v):
                return False
            seen = v
    for i in finite:
        for row in rows:
            v = row[i]
            if type(v) is float and not math.isfinite(v):
                return False
    for i in floats:
        for row in rows:
            v = row[i]  # -0.0 too: a jsonb number is a numeric, which has no negative zero
            if v is not None and (not math.isfinite(v) or (v == 0.0 and math.copysign(1.0, v) < 0)):
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
        select = json_select(types) if dialect == "postgresql" else None
        self.from_json: str | None = None
        if select is not None:
            self.from_json = (
                f"INSERT INTO {table_name} ({cols}) SELECT {select}"
                f" FROM jsonb_array_elements($1::text::jsonb) AS r{conflict}"
            )
        self._aware = [i for i, t in enumerate(types) if t[0] == "timestamptz"]
        self._finite = [i for i, t in enumerate(types) if t[0] == "jsonb"]
        self._floats = [i for i, t in enumerate(types) if t[0] == "float8"]
        # PostgreSQL's cheapest way in, when every column can take it
        fns = copytext.writers(types) if dialect == "postgresql" else None
        shared = [i for i, _, _ in self._batch_cols] + [i for i, _, _, _ in self._message_cols]
        self.copy = None if fns is None else copytext.Layout(self.names, fns, shared)
        schema, _, name = table_name.rpartition(".")
        self.copy_table = (schema or None, name)

    def json_rows(self, rows: list[tuple[Any, ...]]) -> str | None:
        """The rows as one JSON array for `from_json`, or None when they must be bound row by row."""
        if self.from_json is None or not _json_exact(rows, self._aware, self._finite, self._floats):
            return None
        try:
            return _encode(rows).decode()
        except _JSON_ERRORS:  # say a lone surrogate: the row-by-row INSERT reports it
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
            raise Unfit(f"`{where}` is {type_name(obj)}, not an object")
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
