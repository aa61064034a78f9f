"""Text COPY against the real PostgreSQL: whatever it writes lands exactly as the values."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import need_service
from wireway.connectors.sql import copytext

PG = "postgresql://postgres@127.0.0.1:5432/test"
TYPES = [
    ("text", "text"),
    ("int8", "int"),
    ("bool", "bool"),
    ("timestamptz", "timestamptz"),
    ("jsonb", "json"),
]
NAMES = ["a", "b", "c", "d", "e"]
WRITERS = copytext.writers(TYPES)
assert WRITERS is not None
# a and d shared by the rows of a message (as a reading's device and time), the rest per row
LAYOUT = copytext.Layout(NAMES, WRITERS, [0, 3])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
texts = st.none() | st.text()
stamps = st.none() | st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=st.just(UTC))
own = st.tuples(
    st.none() | st.integers(-(2**63), 2**63 - 1),
    st.none() | st.booleans(),
    st.none() | json_values.filter(lambda v: v is not None),
)
messages = st.lists(st.tuples(texts, stamps, st.lists(own, min_size=1, max_size=3)), min_size=1, max_size=6)


def grouped(drawn: list[tuple[Any, Any, list[tuple[Any, ...]]]]) -> list[list[tuple[Any, ...]]]:
    """Rows per message, sharing the message's objects as the sql output's rows do."""
    return [[(a, b, c, d, e) for b, c, e in rows] for a, d, rows in drawn]


async def copied(batch: list[tuple[Any, ...]], data: bytes) -> tuple[list[tuple[Any, ...]], list[str | None]]:
    """The rows as COPY stored them, and the jsonb text each JSON value has when cast."""
    conn = await asyncpg.connect(PG)
    table = f"copytext_{uuid.uuid4().hex[:10]}"
    try:
        await conn.execute(
            f"CREATE TEMP TABLE {table} (n int, a text, b int8, c bool, d timestamptz, e jsonb)"
        )
        numbered = b"".join(b"%d\t%s\n" % (i, line) for i, line in enumerate(data.split(b"\n")[:-1]))
        columns = ["n", *LAYOUT.names]
        await conn.copy_to_table(table, source=memoryview(numbered), columns=columns, format="text")
        records = await conn.fetch(f"SELECT a, b, c, d, e::text AS e FROM {table} ORDER BY n")
        cast = [
            None
            if r[4] is None
            else await conn.fetchval("SELECT $1::jsonb::text", msgspec.json.encode(r[4]).decode())
            for r in batch
        ]
        return [tuple(r.values()) for r in records], cast
    finally:
        await conn.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_what_text_copy_writes_lands_as_the_values(
    drawn: list[tuple[Any, Any, list[tuple[Any, ...]]]],
) -> None:
    need_service("postgresql", 5432)
    groups = grouped(drawn)
    batch = [row for rows in groups for row in rows]
    data = LAYOUT.encode(groups)
    if any(
        isinstance(r[0], str) and ("\x00" in r[0] or any(0xD800 <= ord(c) < 0xE000 for c in r[0]))
        for r in batch
    ):
        assert data is None  # PostgreSQL text has no NUL, UTF-8 no lone surrogates: another path says so
        return
    if any(r[4] is not None and "\\u0000" in msgspec.json.encode(r[4]).decode() for r in batch):
        return  # jsonb refuses \u0000 whichever way it is sent
    assert data is not None
    back, cast = asyncio.run(copied(batch, data))
    assert len(back) == len(batch)
    for got, want, jsonb in zip(back, batch, cast, strict=True):
        assert got[:4] == want[:4]
        assert got[4] == jsonb  # as the same JSON cast to jsonb (numbers as numeric, keys sorted)


def test_the_rows_of_one_message_share_encoded_values() -> None:
    """A message's shared values lead each of its rows; the rest follow in table order."""
    when = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    meta = {"site": "a\tb"}
    groups = [
        [("dev\\1", 1, True, when, meta), ("dev\\1", 2, False, when, None)],
        [("x", None, None, None, 7)],
    ]
    assert LAYOUT.names == ["a", "d", "b", "c", "e"]
    assert LAYOUT.encode(groups) == (
        b'dev\\\\1\t2026-12-01T12:00:00Z\t1\tt\t{"site":"a\\\\tb"}\n'
        b"dev\\\\1\t2026-12-01T12:00:00Z\t2\tf\t\\N\n"
        b"x\t\\N\t\\N\t\\N\t7\n"
    )
    assert copytext.writers([("numeric", "decimal")]) is None
