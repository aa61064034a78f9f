"""Options of the `sql` output, and the paths its `columns` read from each message."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from wireway import registry
from wireway.connectors.sql.base import DEFAULT_OWN_SCHEMA, OWN_SCHEMA
from wireway.connectors.sql.db import parse_url
from wireway.envelope import Message

MISSING: Any = object()
"""What a getter returns when its path is not in the message."""

# (message, $key, $value, $now) -> value or MISSING
Getter = Callable[[Message, Any, Any, datetime], Any]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_ENVELOPE = {
    "messageId": "message_id",
    "timestamp": "timestamp",
    "source": "source",
    "destination": "destination",
    "messageType": "message_type",
    "version": "version",
}
_METADATA = {
    "priority": "priority",
    "ttl": "ttl",
    "retryCount": "retry_count",
    "correlationId": "correlation_id",
}
SPECIALS = ("$key", "$value", "$now")


def _dig(value: Any, segments: tuple[str, ...]) -> Any:
    for seg in segments:
        if type(value) is dict:
            value = value.get(seg, MISSING)
            if value is MISSING:
                return MISSING
        elif type(value) is list and seg.isdigit():
            i = int(seg)
            if i >= len(value):
                return MISSING
            value = value[i]
        else:
            return MISSING
    return value


def compile_path(text: str) -> tuple[Getter, bool]:
    """A getter for a dotted path, and whether the path is optional (a trailing `?`).

    Paths start at a field of the envelope's wire form (`messageId`, `timestamp`,
    `source`, `destination`, `messageType`, `version`, `payload...`, `metadata...`)
    or at a special: `$key` / `$value...` (the entry being exploded) or `$now`.
    Numeric segments index lists (`payload.items.0.id`).

    Raises:
        ValueError: a path that can never match.
    """
    optional = text.endswith("?")
    body = text[:-1] if optional else text
    parts = tuple(body.split("."))
    if not body or any(not p for p in parts):
        raise ValueError(f"`{text}` is not a dotted path")
    head, rest = parts[0], parts[1:]
    getter: Getter
    if head == "$now":
        if rest:
            raise ValueError(f"`{text}`: $now has no fields")
        getter = _now
    elif head == "$key":
        if rest:
            raise ValueError(f"`{text}`: $key has no fields")
        getter = _key
    elif head == "$value":
        getter = _value if not rest else _value_path(rest)
    elif head == "payload":
        getter = _payload if not rest else _payload_path(rest)
    elif head == "metadata":
        getter = _metadata(rest)
    elif head in _ENVELOPE:
        if rest:
            raise ValueError(f"`{text}`: {head} has no fields")
        getter = _attr(_ENVELOPE[head])
    else:
        known = ", ".join([*_ENVELOPE, "payload", "metadata", *SPECIALS])
        raise ValueError(f"`{text}` does not start with an envelope field ({known})")
    return getter, optional


def _now(msg: Message, key: Any, value: Any, now: datetime) -> Any:
    return now


def _key(msg: Message, key: Any, value: Any, now: datetime) -> Any:
    return key


def _value(msg: Message, key: Any, value: Any, now: datetime) -> Any:
    return value


def _value_path(rest: tuple[str, ...]) -> Getter:
    def get(msg: Message, key: Any, value: Any, now: datetime) -> Any:
        return _dig(value, rest)

    return get


def _payload(msg: Message, key: Any, value: Any, now: datetime) -> Any:
    return msg.payload


def _payload_path(rest: tuple[str, ...]) -> Getter:
    if len(rest) == 1:
        (field,) = rest

        def get_one(msg: Message, key: Any, value: Any, now: datetime) -> Any:
            payload = msg.payload
            return payload.get(field, MISSING) if type(payload) is dict else MISSING

        return get_one

    def get(msg: Message, key: Any, value: Any, now: datetime) -> Any:
        return _dig(msg.payload, rest)

    return get


def _attr(name: str) -> Getter:
    def get(msg: Message, key: Any, value: Any, now: datetime) -> Any:
        return getattr(msg, name)

    return get


def _metadata(rest: tuple[str, ...]) -> Getter:
    if not rest:

        def get_all(msg: Message, key: Any, value: Any, now: datetime) -> Any:
            return msgspec.to_builtins(msg.metadata)

        return get_all
    if rest[0] not in _METADATA or len(rest) > 1:
        raise ValueError(f"`metadata.{'.'.join(rest)}`: metadata has only {', '.join(_METADATA)}")
    return _attr_of_metadata(_METADATA[rest[0]])


def _attr_of_metadata(name: str) -> Getter:
    def get(msg: Message, key: Any, value: Any, now: datetime) -> Any:
        return getattr(msg.metadata, name)

    return get


class SqlOutputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Insert each message as one row, or one row per entry of an object, into a SQL table.

    SQLite or PostgreSQL (by `url`). `columns` maps each column to a dotted path into
    the envelope (`messageId`, `timestamp`, `payload.device_id`,
    `metadata.correlationId`); a path ending in `?` is optional (NULL when missing),
    any other missing path refuses the message. With `explode: payload.sensors` a
    message gives one row per entry of that object: `$key` is the entry's name and
    `$value` its value (`$value.unit` reads inside it); `$now` is the time of the write.

    A batch is written in ONE statement or transaction. PostgreSQL: one text COPY of
    the rows for a batch of 8 messages or more (the cheapest for the server; like any
    COPY it fires triggers but not rules), or, for a smaller batch, when COPY cannot
    take a value, or when a batch meets rows already stored under `on_conflict:
    ignore` (COPY is then skipped for a minute), the rows as one jsonb parameter,
    `INSERT ... SELECT ... FROM jsonb_array_elements($1)`, or, for column types or
    values JSON cannot carry exactly, the INSERT bound once per row in one
    transaction. SQLite: the INSERT once per row in one transaction.
    `on_conflict: ignore` adds `ON CONFLICT DO NOTHING` to the INSERT, so with a UNIQUE
    constraint over the message id a redelivered message never makes a
    second row. Values are checked against the
    table's columns (found when the output opens): a missing path, a null in a NOT
    NULL column, a string longer than its VARCHAR or a value of the wrong type refuses
    only that message (to the dead-letter queue), and the rest of the batch commits.
    If the database is unreachable the batch is retried (and the circuit breaker
    opens); `/health` shows `storage: down` until it is back. The output starts even
    while the database is down.
    """

    url: Annotated[
        str,
        Meta(
            description="`sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite://` "
            "(`<data-dir>/wireway.db`) or `postgresql://user:password@host:port/db`"
        ),
    ]
    table: Annotated[str, Meta(description="table to insert into (`name` or `schema.name`)")]
    columns: Annotated[
        dict[str, str],
        Meta(
            min_length=1,
            description="column -> path: `payload.device_id`, `messageId`, `$key`, "
            "`$value`, `$now`; a trailing `?` makes a path optional",
        ),
    ]
    explode: Annotated[
        str,
        Meta(
            description="path to an object: one row per entry (`$key`, `$value`); empty: one row per message"
        ),
    ] = ""
    on_conflict: Annotated[
        Literal["ignore", "error"],
        Meta(description="`ignore`: ON CONFLICT DO NOTHING; `error`: a duplicate is refused"),
    ] = "ignore"
    timestamp_columns: Annotated[
        list[str],
        Meta(description="columns whose RFC 3339 values are stored as timestamps (UTC)"),
    ] = []
    json_columns: Annotated[
        list[str], Meta(description="columns stored as JSON (PostgreSQL json/jsonb are anyway)")
    ] = []
    migrate: Annotated[
        str | None,
        Meta(
            description="a registered set of migrations to apply to `table` when the output opens "
            "(`sensor_readings`: the sensor application's readings table)"
        ),
    ] = None
    schema: Annotated[
        str,
        Meta(
            pattern=OWN_SCHEMA.pattern,
            description="where wireway keeps its own tables (the record of applied migrations): "
            "a PostgreSQL schema, or the table-name prefix `<schema>_` in SQLite",
        ),
    ] = DEFAULT_OWN_SCHEMA

    def __post_init__(self) -> None:
        try:
            parse_url(self.url, data_dir=Path("."))
        except ValueError as exc:
            raise ValueError(f"{exc} - at `$.url`") from None
        if not _TABLE.match(self.table):
            raise ValueError("expected a table name like `readings` or `app.readings` - at `$.table`")
        for column, path in self.columns.items():
            if not _IDENT.match(column):
                raise ValueError(f"`{column}` is not a column name - at `$.columns`")
            try:
                compile_path(path)
            except ValueError as exc:
                raise ValueError(f"{exc} - at `$.columns.{column}`") from None
            if path.rstrip("?").split(".")[0] in ("$key", "$value") and not self.explode:
                raise ValueError(
                    f"`{path}` needs `explode` (the object to make rows of) - at `$.columns.{column}`"
                )
        if self.explode:
            try:
                compile_path(self.explode)
            except ValueError as exc:
                raise ValueError(f"{exc} - at `$.explode`") from None
            if self.explode.split(".")[0].startswith("$") or self.explode.endswith("?"):
                raise ValueError("expected a path into the envelope - at `$.explode`")
        for key in ("timestamp_columns", "json_columns"):
            for column in getattr(self, key):
                if column not in self.columns:
                    raise ValueError(f"`{column}` is not one of `columns` - at `$.{key}`")
        if self.migrate is not None and self.migrate not in registry.names("migrations"):
            known = ", ".join(registry.names("migrations")) or "none registered"
            raise ValueError(
                f"`{self.migrate}` is not a registered set of migrations ({known}) - at `$.migrate`"
            )
        both = set(self.timestamp_columns) & set(self.json_columns)
        if both:
            raise ValueError(f"`{sorted(both)[0]}` cannot be both a timestamp and JSON - at `$.json_columns`")
