"""The database layer's interface, errors and values, shared by both dialects.

SQL is written once, with PostgreSQL's `$1, $2` placeholders (the SQLite backend
rewrites it: `wireway.connectors.sql.rewrite`). Both dialects take and give the same
shapes:

- arguments: timestamps as `datetime` (aware; a naive one is taken as UTC), JSON as
  a `dict` or `list` (or any value wrapped in `Json(...)`); other values as usual.
- results: rows are dicts; timestamps come back as RFC 3339 UTC strings with
  milliseconds (`2026-11-24T07:50:43.531Z`), DATE values as `YYYY-MM-DD`, JSON
  columns decoded. PostgreSQL decodes `json`/`jsonb` columns with codecs set on
  every pooled connection. SQLite decodes the columns *declared* `JSON`, `JSONB` or
  `JSON_TEXT` (TEXT affinity; what migrations should use) whenever such a column is
  selected directly, not through an expression (`COALESCE(data, ...)` comes back as
  text).
- SQLite stores timestamps as TEXT, RFC 3339 in UTC with exactly three fraction
  digits, so they compare and sort as text; declare them TEXT (not TIMESTAMP or DATE,
  whose stdlib converters would get in the way). PostgreSQL keeps what it is given.

Neither dialect connects before `open()`; every other call opens lazily, so a
database that was away at start is picked up when it comes back.

Driver errors are translated at the dialect's edge (`raise ... from exc`):
`NotConnected` when the database cannot be reached or the connection was lost;
`RejectedData` (a `PermanentError`) when the database refused the data itself (a
constraint, a type, a value too long: sending the same data again cannot help);
`QueryFailed` (a `RetryableError`) for anything else (a lock, a deadlock, a missing
table).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime
from typing import Any

import msgspec

from wireway.errors import PermanentError, RetryableError

PING_TIMEOUT = 3.0  # seconds a liveness check may take
DEFAULT_OWN_SCHEMA = "wireway"
OWN_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")  # a plain identifier: no quoting needed


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


def own_table_name(dialect: str, schema: str, name: str) -> str:
    """`Database.own_table` for a dialect and schema."""
    return f"{schema}.{name}" if dialect == "postgresql" else f"{schema}_{name}"


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
    try:
        return dt.astimezone(UTC) if dt.utcoffset() else dt
    except OverflowError:  # e.g. 0001-01-01T01:00+20:24 lies before year 1 in UTC
        raise ValueError(f"timestamp out of range: {text!r}") from None


def result_value(value: Any) -> Any:
    """A value read from a driver in the shape both dialects give (dates as text)."""
    t = type(value)
    if t is datetime:
        return format_timestamp(value)
    if t is date:
        return value.isoformat()
    return value


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
    own_schema: str = DEFAULT_OWN_SCHEMA  # where wireway keeps its own tables (`own_table`)

    def own_table(self, name: str) -> str:
        """How a statement names one of wireway's own tables (its migrations record, an
        application's tables), kept apart from the user's: `<schema>.<name>` in
        PostgreSQL, `<schema>_<name>` in SQLite (one file, one namespace)."""
        return own_table_name(self.dialect, self.own_schema, name)

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
