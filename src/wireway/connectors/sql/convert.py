"""How a message's values become column values: checked, converted, with fast paths.

Every column gets one conversion function: a missing path, a null in a NOT NULL
column, a string longer than its VARCHAR or a value of the wrong type raises `Unfit`
naming the column and the path (the message goes to the DLQ, the rest of its batch
is written).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from wireway.connectors.sql.base import format_timestamp, json_text, parse_timestamp
from wireway.connectors.sql.columns import ColumnInfo
from wireway.connectors.sql.config import MISSING, Getter


class Unfit(ValueError):
    """A value that does not fit its column."""


def type_name(value: Any) -> str:
    """How an error message names a value's JSON type."""
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
                raise Unfit(f"expected a string, got {type_name(v)}")
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
                raise Unfit(f"expected an integer, got {type_name(v)}")
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
            raise Unfit(f"expected a number, got {type_name(v)}")

        return number
    if kind == "bool":

        def boolean(v: Any) -> Any:
            if type(v) is bool:
                return v
            raise Unfit(f"expected true or false, got {type_name(v)}")

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
