"""The hand-written MQTT codec of the mqtt input: packets split anywhere parse the same."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wireway.connectors.mqtt import wire


def publish(topic: bytes, payload: bytes, mid: int, qos: int, *, v5: bool, props: bytes = b"") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    if v5:
        body += wire.varint(len(props)) + props
    return bytes((0x30 | qos << 1,)) + wire.varint(len(body) + len(payload)) + body + payload


def feed(stream: bytes, cuts: list[int], v5: bool) -> tuple[list[wire.Publish], list[tuple[int, bytes]]]:
    """Parse `stream` as if it arrived in pieces cut at `cuts`."""
    got: list[wire.Publish] = []
    others: list[tuple[int, bytes]] = []
    rest = b""
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for a, b in itertools.pairwise(bounds):
        buf = rest + stream[a:b]
        pubs, other, used = wire.parse(buf, v5)
        got += pubs
        others += other
        rest = buf[used:]
    assert rest == b""
    return got, others


messages = st.lists(
    st.tuples(
        st.binary(min_size=1, max_size=40),
        st.binary(max_size=300),  # crosses the 127-byte one-byte length
        st.integers(1, 65535),
        st.sampled_from([0, 1, 2]),
    ),
    max_size=20,
)


@given(messages, st.lists(st.integers(0, 8000), max_size=10), st.booleans())
def test_publishes_split_anywhere_parse_the_same(
    msgs: list[tuple[bytes, bytes, int, int]], cuts: list[int], v5: bool
) -> None:
    stream = b"".join(publish(t, p, m, q, v5=v5, props=b"\x01\x01" if v5 else b"") for t, p, m, q in msgs)
    stream += b"\xd0\x00"  # a PINGRESP among them
    cuts = [c for c in cuts if c <= len(stream)]
    got, others = feed(stream, cuts, v5)
    assert got == [(t, p, m if q else 0, q) for t, p, m, q in msgs]
    assert others == [(wire.PINGRESP, b"")]


def test_large_payload_uses_a_multi_byte_length() -> None:
    payload = b"x" * 200_000
    stream = publish(b"a/b", payload, 7, 1, v5=False)
    assert stream[1] & 0x80
    assert stream[2] & 0x80
    assert feed(stream, [1, 2, 3, 100], False)[0] == [(b"a/b", payload, 7, 1)]


def test_malformed_length_and_short_publish_are_refused() -> None:
    with pytest.raises(wire.MalformedPacket):
        wire.parse(b"\x30\xff\xff\xff\xff\x01", False)
    with pytest.raises(wire.MalformedPacket):
        wire.parse(b"\x32\x03\x00\x05a", False)  # topic longer than the packet


def test_control_packets() -> None:
    connect = wire.connect("dev-1", keepalive=30, clean=False, v5=False, username="u", password="p")
    assert connect[0] == 0x10
    assert b"\x00\x04MQTT\x04\xc0\x00\x1e" in connect
    assert connect.endswith(b"\x00\x05dev-1\x00\x01u\x00\x01p")
    v5 = wire.connect("d", keepalive=30, clean=False, v5=True, session_expiry=60, receive_maximum=1000)
    assert b"\x08\x11\x00\x00\x00\x3c\x21\x03\xe8" in v5  # properties: expiry 60 s, receive max 1000
    sub = wire.subscribe(1, ["a/+", "b/#"], 1, v5=False)
    assert sub == b"\x82\x0e\x00\x01\x00\x03a/+\x01\x00\x03b/#\x01"
    assert wire.acks([(1, 1), (258, 2), (5, 0)]) == b"\x40\x02\x00\x01\x50\x02\x01\x02"
    assert wire.connack(b"\x01\x00", False) == (True, 0)
    assert wire.suback(b"\x00\x01\x00\x01\x80", True) == (1, [1, 0x80])
    assert wire.reason_text(4, False) == "bad user name or password"
    assert wire.reason_text(0x8E, True) == "session taken over"


@given(
    st.text(max_size=40)
    | st.datetimes().map(lambda d: d.isoformat() + "Z")
    | st.just("0001-01-01T00:00:00+14:00")
)
def test_id_part_shortcut_changes_no_id(value: str) -> None:
    """Texts skipped without parsing are exactly those canonical_timestamp refuses."""
    from wireway.connectors.mqtt.input import _id_part
    from wireway.envelope import canonical_timestamp

    try:
        expected = canonical_timestamp(value)
    except (ValueError, OverflowError):
        expected = value
    assert _id_part(value) == expected
