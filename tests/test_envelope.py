"""The envelope: wire names, round trips, wrapping and validation."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wireway import envelope
from wireway.envelope import Message, Metadata

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
messages = st.builds(
    Message,
    message_id=st.text(min_size=1, max_size=30),
    timestamp=st.just("2026-11-24T07:30:00.000Z"),
    payload=json_values,
    source=st.text(max_size=20),
    destination=st.text(max_size=20),
    message_type=st.sampled_from(["data", "control", "event", "error"]),
    metadata=st.builds(
        Metadata,
        priority=st.sampled_from(["high", "normal", "low"]),
        ttl=st.none() | st.floats(min_value=0, max_value=1e6),
        retry_count=st.integers(0, 100),
        correlation_id=st.none() | st.text(max_size=20),
    ),
)


@given(messages)
def test_round_trip(msg: Message) -> None:
    """Encoding then decoding gives back the same envelope."""
    assert envelope.decode(envelope.encode(msg)) == msg


@given(messages)
def test_wire_names_are_camel_case(msg: Message) -> None:
    """The JSON uses messageId, messageType, retryCount, correlationId."""
    wire = msgspec.json.decode(envelope.encode(msg))
    assert wire["messageId"] == msg.message_id
    assert wire["messageType"] == msg.message_type
    assert wire["payload"] == msg.payload
    if msg.metadata.retry_count:
        assert wire["metadata"]["retryCount"] == msg.metadata.retry_count


@given(json_values)
def test_bare_values_are_wrapped(value: object) -> None:
    """Anything that is not an envelope becomes the payload of a new one."""
    msg = envelope.from_value(value, source="p.http")
    if not envelope.is_envelope(value):
        assert msg.payload == value
        assert msg.source == "p.http"
        assert msg.version == "1.0"
        assert msg.metadata.priority == "normal"


def test_envelope_is_taken_as_is_with_defaults() -> None:
    """An object with messageId, messageType and payload keeps its id; the rest defaults."""
    msg = envelope.from_value(
        {"messageId": "abc", "messageType": "event", "payload": {"x": 1}}, source="ignored"
    )
    assert msg.message_id == "abc"
    assert msg.message_type == "event"
    assert msg.version == "1.0"
    assert msg.metadata.priority == "normal"
    envelope.parse_timestamp(msg.timestamp)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"messageId": "a", "messageType": "Not a type!", "payload": 1}, "$.messageType"),
        ({"messageId": 5, "messageType": "data", "payload": 1}, "$.messageId"),
        (
            {"messageId": "a", "messageType": "data", "payload": 1, "metadata": {"priority": "x"}},
            "$.metadata.priority",
        ),
        (
            {"messageId": "a", "messageType": "data", "payload": 1, "timestamp": "yesterday"},
            "$.timestamp",
        ),
    ],
)
def test_invalid_envelope_names_the_field(value: dict[str, object], field: str) -> None:
    """An invalid envelope is refused with the failing field in the reason."""
    with pytest.raises(ValueError, match=field.replace("$", r"\$")):
        envelope.from_value(value, source="s")


def test_ids_are_unique_and_sortable() -> None:
    """ULIDs from one process are unique and increase."""
    ids = [envelope.new_message_id() for _ in range(10000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)


def test_ttl_counts_from_timestamp() -> None:
    """A message expires ttl seconds after its own timestamp."""
    msg = Message("id", "2026-01-01T00:00:00Z", 1, metadata=Metadata(ttl=60))
    born = envelope.parse_timestamp(msg.timestamp)
    assert not msg.expired(born + 59)
    assert msg.expired(born + 61)
    assert not Message("id", envelope.now_rfc3339(), 1).expired(time.time() + 1e6)


def test_canonical_timestamps() -> None:
    """One instant, one text; sub-millisecond instants stay apart."""
    from wireway.envelope import canonical_timestamp

    assert canonical_timestamp("2025-10-16T18:33:58Z") == canonical_timestamp("2025-10-16T20:33:58.000+02:00")
    assert canonical_timestamp("2025-10-16T18:33:58.000100Z") != canonical_timestamp(
        "2025-10-16T18:33:58.000200Z"
    )


@given(
    st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(2200, 1, 1)),
    st.integers(-14 * 60, 14 * 60),
    st.integers(0, 6),
)
def test_canonical_fast_path_matches_exact(moment: datetime, offset_minutes: int, digits: int) -> None:
    """Writing one instant as ...Z or with any offset gives the same canonical text."""
    from wireway.envelope import _exact_utc, canonical_timestamp

    dt = moment.replace(tzinfo=UTC)
    frac = f"{dt.microsecond:06d}"[:digits]
    dt = dt.replace(microsecond=int(frac.ljust(6, "0")) if digits else 0)
    z_text = dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if digits else "") + "Z"
    shifted = dt.astimezone(timezone(timedelta(minutes=offset_minutes)))
    off = shifted.strftime("%z")
    o_text = shifted.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if digits else "") + f"{off[:3]}:{off[3:]}"
    assert canonical_timestamp(z_text) == _exact_utc(z_text) == canonical_timestamp(o_text)


def _canonical_before(value: str) -> str:
    """canonical_timestamp as it was (the fast path with regex groups): the reference."""
    m = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?Z$", value)
    if m:
        return f"{m.group(1)}.{(m.group(2) or '').ljust(6, '0')}Z"
    return envelope._exact_utc(value)


# near-timestamps: valid ones, wrong lengths, other separators, non-ASCII digits, a newline
timestamp_like = st.builds(
    lambda date, frac, tail: date + frac + tail,
    st.sampled_from(
        ["2025-10-16T18:33:58", "2025-10-16t18:33:58", "2025-10-16 18:33:58", "٢٠٢٥-10-16T18:33:58"]
    )
    | st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", fullmatch=True)
    # (years 1 and 9999 with an offset overflow: OverflowError, not the point here)
    | st.datetimes(datetime(2, 1, 1), datetime(9998, 1, 1)).map(lambda d: d.isoformat(timespec="seconds")),
    st.just("") | st.from_regex(r"\.[0-9]{0,10}", fullmatch=True),
    st.sampled_from(["Z", "z", "Z\n", "Zx", "", "+00:00", "-07:30", "+14:00\n"]),
)


@given(timestamp_like | st.text(max_size=30))
def test_canonical_outputs_unchanged(value: str) -> None:
    """The same text (or the same ValueError) as before the fast path was reworked."""
    try:
        expected = _canonical_before(value)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            envelope.canonical_timestamp(value)
        return
    assert envelope.canonical_timestamp(value) == expected


id_parts = st.lists(st.text() | st.integers() | st.floats() | st.booleans() | st.none(), max_size=4)


@given(id_parts)
def test_stable_id_is_uuid5_forever(parts: list[object]) -> None:
    """The contract: byte for byte the UUIDv5 of the '|'-joined parts (non-ASCII too)."""
    expected = str(uuid.uuid5(envelope.ID_NAMESPACE, "|".join(str(p) for p in parts)))
    assert envelope.stable_id(*parts) == expected


def test_stable_id_known_values() -> None:
    """Ids already stored and sent by devices (pinned: computed once with uuid.uuid5)."""
    assert (
        envelope.stable_id("bench-001", "2025-10-16T18:33:58.123456Z")
        == "197da187-71e0-57b1-a1e9-a48b8ae2dfa5"
    )
    assert (
        envelope.stable_id("capteur-é", "2025-10-16T18:33:58.000000Z")
        == "2fb81044-6be0-593e-9a76-eacb00034bdf"
    )
    assert envelope.stable_id() == "231e3dc4-310c-5bc7-9587-43fbab8c7331"


@given(timestamp_like | st.text(max_size=30))
def test_parse_fast_path_matches_general_parser(value: str) -> None:
    """UTC 'Z' texts read directly by fromisoformat give the general parser's datetime
    (or its ValueError)."""
    try:
        expected = envelope._parse_rfc3339(value)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            envelope._parse_datetime(value)
        return
    got = envelope._parse_datetime(value)
    assert got == expected
    assert got.utcoffset() == expected.utcoffset()
    assert envelope.timestamp_seconds(value) == expected.timestamp()
