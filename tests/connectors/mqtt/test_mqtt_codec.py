"""The hand-written MQTT codec: packets split anywhere parse the same, valid packets
round-trip, and random, truncated or lying bytes never raise anything but MalformedPacket."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wireway.connectors.mqtt import wire


def publish(topic: bytes, payload: bytes, mid: int, qos: int, *, v5: bool, props: bytes = b"") -> bytes:
    """A PUBLISH written independently of `wire.publish` (properties included)."""
    head = len(topic).to_bytes(2, "big") + topic
    if qos:
        head += mid.to_bytes(2, "big")
    if v5:
        head += wire.varint(len(props)) + props
    return bytes((0x30 | qos << 1,)) + wire.varint(len(head) + len(payload)) + head + payload


def feed(stream: bytes, cuts: list[int], v5: bool) -> tuple[list[wire.Publish], list[tuple[int, bytes]]]:
    """Parse `stream` as if it arrived in pieces cut at `cuts`."""
    got: list[wire.Publish] = []
    others: list[tuple[int, bytes]] = []
    rest = b""
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for a, b in itertools.pairwise(bounds):
        buf = rest + stream[a:b]
        pubs, _, other, used = wire.parse(buf, v5)
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


@given(messages, st.booleans(), st.booleans())
def test_encoded_publishes_round_trip(
    msgs: list[tuple[bytes, bytes, int, int]], v5: bool, retain: bool
) -> None:
    """What `wire.publish` writes (the output's packets), `wire.parse` reads back."""
    stream = b"".join(wire.publish(t, p, m, q, retain=retain, v5=v5) for t, p, m, q in msgs)
    publishes, acks, others, used = wire.parse(stream, v5)
    assert used == len(stream)
    assert (acks, others) == ([], [])
    assert publishes == [(t, p, m if q else 0, q) for t, p, m, q in msgs]


@given(st.binary(max_size=600), st.booleans(), st.integers(256, 2048))
@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_parse_or_are_malformed(data: bytes, v5: bool, max_size: int) -> None:
    """Any bytes: a result that stays inside the buffer, or MalformedPacket; nothing else."""
    try:
        publishes, acks, others, used = wire.parse(data, v5, max_size)
    except wire.MalformedPacket:
        return
    assert 0 <= used <= len(data)
    for topic, payload, mid, qos in publishes:
        assert qos in (0, 1, 2)
        assert 0 <= mid <= 65535
        assert len(topic) + len(payload) <= used
    for kind, body in others:
        assert 0 < kind < 16
        assert len(body) <= used
        for decode in (wire.connack, wire.suback):
            with contextlib.suppress(wire.MalformedPacket):
                decode(body, v5)
    for _, mid, code in acks:
        assert 0 <= mid <= 65535
        assert 0 <= code <= 255


@given(messages, st.booleans(), st.data())
def test_truncated_streams_leave_the_tail_for_the_next_read(
    msgs: list[tuple[bytes, bytes, int, int]], v5: bool, data: st.DataObject
) -> None:
    """A stream cut anywhere parses its complete packets and keeps the rest, without error."""
    packets = [publish(t, p, m, q, v5=v5) for t, p, m, q in msgs]
    stream = b"".join(packets)
    cut = data.draw(st.integers(0, len(stream)))
    publishes, _, _, used = wire.parse(stream[:cut], v5)
    complete = list(itertools.accumulate(len(p) for p in packets))
    assert used == max([0, *(c for c in complete if c <= cut)])
    assert len(publishes) == sum(1 for c in complete if c <= cut)


@given(st.binary(min_size=1, max_size=40), st.binary(max_size=100), st.integers(1, 65535), st.data())
def test_a_publish_whose_length_lies_is_malformed(
    topic: bytes, payload: bytes, mid: int, data: st.DataObject
) -> None:
    """A QoS 1 MQTT 5 PUBLISH whose remaining length is cut short inside its header is
    refused, never read into the next packet's bytes."""
    head = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big") + b"\x00"
    short = data.draw(st.integers(0, len(head) - 1))
    packet = b"\x32" + wire.varint(short) + (head + payload)[:short]
    with pytest.raises(wire.MalformedPacket):
        wire.parse(packet + b"\xd0\x00" * 80, True)


def test_large_payload_uses_a_multi_byte_length() -> None:
    payload = b"x" * 200_000
    stream = publish(b"a/b", payload, 7, 1, v5=False)
    assert stream[1] & 0x80
    assert stream[2] & 0x80
    assert feed(stream, [1, 2, 3, 100], False)[0] == [(b"a/b", payload, 7, 1)]


@pytest.mark.parametrize(
    ("packet", "v5"),
    [
        (b"\x30\xff\xff\xff\xff\x01", False),  # a remaining length of 5 bytes
        (b"\x32\x03\x00\x05a", False),  # topic longer than the packet
        (b"\x30\x00", False),  # PUBLISH of 0 bytes (no topic length)
        (b"\x30\x01\x00", False),  # half a topic length
        (b"\x32\x02\x00\x00", False),  # QoS 1 without its packet id
        (b"\x36\x04\x00\x00\x00\x01", False),  # QoS 3
        (b"\x30\x02\x00\x00", True),  # MQTT 5 without the property length
        (b"\x30\x05\x00\x00\x09ab", True),  # a property length past the packet end
        (b"\x30\x05\x00\x00\x80\x80\x80", True),  # a property length cut by the packet end
        (b"\x30\x08\x00\x00\xff\xff\xff\xff\x01\x00", True),  # a 5-byte property length
        (b"\x40\x01\x00", False),  # PUBACK without a packet id
        (b"\x00\x00", False),  # reserved packet type 0
    ],
)
def test_malformed_packets_are_refused(packet: bytes, v5: bool) -> None:
    with pytest.raises(wire.MalformedPacket):
        wire.parse(packet + b"\xd0\x00" * 8, v5)  # the next packets are no excuse to read on


def test_a_malformed_mqtt5_publish_is_not_taken_with_a_corrupted_payload() -> None:
    """The property length says 9 bytes, the packet holds 3 after it: refused, where a
    parser that trusted it would hand on a payload cut out of the next packet."""
    with pytest.raises(wire.MalformedPacket, match="past the end"):
        wire.parse(b"\x30\x07\x00\x01t\x09abc" + publish(b"n", b"next", 0, 0, v5=True), True)


def test_a_packet_over_the_size_limit_is_refused_before_it_is_all_there() -> None:
    head = b"\x30" + wire.varint(2_000_000)
    with pytest.raises(wire.MalformedPacket, match="over the limit of 1048576"):
        wire.parse(head + b"\x00\x01t", False)  # only the first bytes have arrived
    packet = publish(b"t", b"x" * 300, 0, 0, v5=False)  # 306 bytes, fixed header included
    assert wire.parse(packet, False, max_size=306)[3] == 306
    with pytest.raises(wire.MalformedPacket):
        wire.parse(packet, False, max_size=305)


def test_acknowledgements_of_our_publishes() -> None:
    stream = b"\x40\x02\x00\x07" + b"\x50\x03\x01\x00\x10" + b"\x70\x04\x00\x09\x87\x00"
    publishes, acks, others, used = wire.parse(stream, True)
    assert acks == [(wire.PUBACK, 7, 0), (wire.PUBREC, 256, 0x10), (wire.PUBCOMP, 9, 0x87)]
    assert (publishes, others, used) == ([], [], len(stream))


def test_control_packets() -> None:
    connect = wire.connect("dev-1", keepalive=30, clean=False, v5=False, username="u", password="p")
    assert connect[0] == 0x10
    assert b"\x00\x04MQTT\x04\xc0\x00\x1e" in connect
    assert connect.endswith(b"\x00\x05dev-1\x00\x01u\x00\x01p")
    v5 = wire.connect(
        "d",
        keepalive=30,
        clean=False,
        v5=True,
        session_expiry=60,
        receive_maximum=1000,
        max_packet_size=1 << 20,
    )
    # properties: expiry 60 s, receive maximum 1000, maximum packet size 1 MiB
    assert b"\x0d\x11\x00\x00\x00\x3c\x21\x03\xe8\x27\x00\x10\x00\x00" in v5
    sub = wire.subscribe(1, ["a/+", "b/#"], 1, v5=False)
    assert sub == b"\x82\x0e\x00\x01\x00\x03a/+\x01\x00\x03b/#\x01"
    assert wire.acks([(1, 1), (258, 2), (5, 0)]) == b"\x40\x02\x00\x01\x50\x02\x01\x02"
    assert wire.connack(b"\x01\x00", False) == (True, 0, {})
    props = b"\x0d\x21\x00\x0a\x27\x00\x00\x10\x00\x1f\x00\x02hi"
    assert wire.connack(b"\x00\x00" + props, True) == (False, 0, {0x21: 10, 0x27: 4096})
    with pytest.raises(wire.MalformedPacket):
        wire.connack(b"\x00\x00\x05\x21\x00", True)  # the properties run past the packet
    assert wire.suback(b"\x00\x01\x00\x01\x80", True) == (1, [1, 0x80])
    with pytest.raises(wire.MalformedPacket):
        wire.suback(b"\x00\x01\x07\x01", True)
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
