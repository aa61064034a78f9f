"""json and jsonl encoding and decoding."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from test_envelope import json_values, messages
from wireway import envelope, formats
from wireway.envelope import Message


@given(st.lists(messages, max_size=10))
def test_jsonl_round_trip(batch: list[Message]) -> None:
    """One line per message, each decodes back to its envelope."""
    data = formats.encode_lines(batch)
    assert data.count(b"\n") == len(batch)
    decoded = [envelope.decode(line) for line in data.splitlines()]
    assert decoded == batch


@given(st.lists(json_values, max_size=10))
def test_decode_lines_payloads(values: list[object]) -> None:
    """Payload-only lines decode to the same values, numbered from 1."""
    batch = [Message(str(i), "2026-01-01T00:00:00Z", v) for i, v in enumerate(values)]
    rows = formats.decode_lines(formats.encode_lines(batch, payload_only=True))
    assert [value for _, value, _ in rows] == values
    assert all(err is None for _, _, err in rows)


@given(st.lists(messages, max_size=10))
def test_json_array_round_trip(batch: list[Message]) -> None:
    """A batch as a JSON array decodes to the same envelopes."""
    values = formats.decode_json(formats.encode_array(batch))
    assert [envelope.from_value(v, source="x") for v in values] == batch


def test_bad_line_is_reported_with_its_number() -> None:
    """An invalid JSON line names its line; the others still decode."""
    rows = formats.decode_lines(b'{"a":1}\n{oops\n\n[2]\n')
    assert rows[0] == (1, {"a": 1}, None)
    assert rows[1][0] == 2
    assert rows[1][2] is not None
    assert rows[1][2].startswith("line 2: invalid JSON")
    assert rows[2] == (4, [2], None)
