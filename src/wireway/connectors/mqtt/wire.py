"""The MQTT 3.1.1 / 5 packets a client sends and receives, encoded and parsed by hand.

The mqtt input reads tens of thousands of PUBLISH packets a second. A general client
library handles each one with several socket reads and Python objects; here one
`parse` call walks every complete packet of a socket read, and the acknowledgements
of a batch go out as one write. Only what a client needs is here: CONNECT/CONNACK,
SUBSCRIBE/SUBACK, PUBLISH in both directions, PUBACK/PUBREC/PUBREL/PUBCOMP,
PINGREQ/PINGRESP, DISCONNECT.

Parsing is bounded: each packet is read only within its own remaining length, a
length past `max_size` or a variable byte integer of more than 4 bytes is refused
before the packet is buffered, and anything that does not fit raises
`MalformedPacket` (never IndexError): the connection then closes.
"""

from __future__ import annotations

import struct

(
    CONNACK,
    PUBLISH,
    PUBACK,
    PUBREC,
    PUBREL,
    PUBCOMP,
    SUBACK,
    UNSUBACK,
    PINGRESP,
    DISCONNECT,
    AUTH,
) = (2, 3, 4, 5, 6, 7, 9, 11, 13, 14, 15)
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
MAX_PACKET_SIZE = 1 << 20  # the default of the `max_packet_size` option
_LIMIT = 268_435_455  # the largest remaining length 4 varint bytes can say

# (topic, payload, packet id, qos) of one received PUBLISH; the topic stays bytes
# until the input looks at it (invalid UTF-8 there goes to the dead-letter queue)
Publish = tuple[bytes, bytes, int, int]
# (packet type, packet id, reason code) of a PUBACK / PUBREC / PUBCOMP from the broker
Ack = tuple[int, int, int]

_CONNACK_311 = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
_REASONS_5 = {
    0x10: "no matching subscribers",
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8C: "bad authentication method",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x90: "topic name invalid",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
    0x9A: "retain not supported",
    0x9B: "QoS not supported",
    0x9E: "shared subscriptions not supported",
    0xA1: "subscription identifiers not supported",
    0xA2: "wildcard subscriptions not supported",
}
# MQTT 5 property ids by the size of their value (the spec's table 2-4)
_BYTE_PROPS = frozenset((0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A))
_WORD_PROPS = frozenset((0x13, 0x21, 0x22, 0x23))
_INT_PROPS = frozenset((0x02, 0x11, 0x18, 0x27))
_TEXT_PROPS = frozenset((0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F))
RECEIVE_MAXIMUM, MAXIMUM_PACKET_SIZE, MAXIMUM_QOS = 0x21, 0x27, 0x24


class MalformedPacket(ValueError):
    """The broker sent bytes that are not MQTT (or a packet over the size limit)."""


class OversizedPublish(MalformedPacket):
    """A PUBLISH over the size limit, whose bytes can be skipped as they arrive (a
    `Skipper`) instead of closing the connection: the broker would only send it again.

    Carries what `parse` found before it and where the PUBLISH starts."""

    def __init__(
        self,
        found: tuple[list[Publish], list[Ack], list[tuple[int, bytes]]],
        pos: int,
        first: int,
        start: int,
        length: int,
        limit: int,
    ) -> None:
        super().__init__(f"a PUBLISH of {start - pos + length} bytes, over the limit of {limit}")
        self.found = found
        self.pos = pos  # where the packet starts in the buffer
        self.first = first  # its first byte (QoS)
        self.start = start  # where its variable header starts
        self.length = length  # its remaining length


def varint(n: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def connect(
    client_id: str,
    *,
    keepalive: int,
    clean: bool,
    v5: bool,
    username: str | None = None,
    password: str | None = None,
    session_expiry: int = 0,
    receive_maximum: int = 0,
    max_packet_size: int = 0,
) -> bytes:
    """A CONNECT packet (no will); MQTT 5 announces the session expiry, the receive
    maximum and the maximum packet size this client accepts."""
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    body = _text("MQTT") + bytes((5 if v5 else 4, flags)) + keepalive.to_bytes(2, "big")
    if v5:
        props = b""
        if session_expiry:
            props += b"\x11" + session_expiry.to_bytes(4, "big")
        if receive_maximum:
            props += b"\x21" + min(receive_maximum, 65535).to_bytes(2, "big")
        if max_packet_size:
            props += b"\x27" + min(max_packet_size, _LIMIT).to_bytes(4, "big")
        body += varint(len(props)) + props
    body += _text(client_id)
    if username is not None:
        body += _text(username)
    if password is not None:
        body += _text(password)
    return _packet(0x10, body)


def subscribe(packet_id: int, topics: list[str], qos: int, *, v5: bool, watch: tuple[str, ...] = ()) -> bytes:
    """A SUBSCRIBE packet (`watch` topics at QoS 0, after `topics`); with MQTT 5,
    retained messages only for a new subscription."""
    flag = 0x10 if v5 else 0
    body = packet_id.to_bytes(2, "big") + (b"\x00" if v5 else b"")
    for topic in topics:
        body += _text(topic) + bytes((qos | flag,))
    for topic in watch:
        body += _text(topic) + bytes((flag,))
    return _packet(0x82, body)


def publish(topic: bytes, payload: bytes, packet_id: int, qos: int, *, retain: bool, v5: bool) -> bytes:
    """A PUBLISH packet (`topic` already UTF-8; no properties)."""
    head = len(topic).to_bytes(2, "big") + topic
    if qos:
        head += packet_id.to_bytes(2, "big")
    if v5:
        head += b"\x00"
    return bytes((0x30 | qos << 1 | retain,)) + varint(len(head) + len(payload)) + head + payload


def acks(items: list[tuple[int, int]]) -> bytes:
    """PUBACK (QoS 1) or PUBREC (QoS 2) for each (packet id, qos), as one write."""
    words = [(0x40020000 if qos == 1 else 0x50020000) | mid for mid, qos in items if qos]
    return struct.pack(f">{len(words)}I", *words)


def pubrel(packet_id: int) -> bytes:
    return b"\x62\x02" + packet_id.to_bytes(2, "big")


def pubcomp(packet_id: int) -> bytes:
    return b"\x70\x02" + packet_id.to_bytes(2, "big")


def reason_text(code: int, v5: bool) -> str:
    """A CONNACK / SUBACK / PUBACK / DISCONNECT code in words."""
    if v5:
        return _REASONS_5.get(code, f"reason code {code:#04x}")
    return _CONNACK_311.get(code, f"return code {code}")


def _varint_at(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it) of the variable byte integer at `pos`, read before
    `end`; (-1, pos) when `end` comes first while fewer than 4 bytes were seen."""
    value, shift = 0, 0
    for i in range(pos, min(pos + 4, end)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    if end - pos >= 4:
        raise MalformedPacket("variable byte integer longer than 4 bytes")
    return -1, pos


def _inner_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A variable byte integer that must end before `end` (inside one packet)."""
    value, after = _varint_at(buf, pos, end)
    if value < 0:
        raise MalformedPacket("a length runs past the end of its packet")
    return value, after


def parse(
    buf: bytes, v5: bool, max_size: int = MAX_PACKET_SIZE
) -> tuple[list[Publish], list[Ack], list[tuple[int, bytes]], int]:
    """The complete packets at the start of `buf`.

    Returns (publishes, acknowledgements of our publishes, other packets as
    (type, body), bytes consumed); an incomplete packet at the end is left for the
    next read. Raises MalformedPacket for bytes that are not MQTT and for a packet
    longer than `max_size` bytes (fixed header included), before it is all there.
    """
    publishes: list[Publish] = []
    acknowledged: list[Ack] = []
    others: list[tuple[int, bytes]] = []
    pos, size = 0, len(buf)
    while size - pos >= 2:
        first = buf[pos]
        length = buf[pos + 1]
        if length < 0x80:  # at most 129 bytes: below any `max_size` (256 or more)
            start = pos + 2
            end = start + length
        else:
            length, start = _varint_at(buf, pos + 1, size)
            if length < 0:
                break
            end = start + length
            if end - pos > max_size:
                if first >> 4 == PUBLISH and (first >> 1) & 3 != 3:
                    found = (publishes, acknowledged, others)
                    raise OversizedPublish(found, pos, first, start, length, max_size)
                raise MalformedPacket(f"a packet of {end - pos} bytes, over the limit of {max_size}")
        if end > size:
            break
        kind = first >> 4
        if kind == PUBLISH:
            qos = (first >> 1) & 3
            if length < 2 or qos == 3:
                raise MalformedPacket("PUBLISH shorter than its topic" if qos < 3 else "PUBLISH with QoS 3")
            topic_end = at = start + 2 + ((buf[start] << 8) | buf[start + 1])
            mid = 0
            if qos:
                at += 2
                if at > end:
                    raise MalformedPacket("PUBLISH shorter than its topic and packet id")
                mid = (buf[at - 2] << 8) | buf[at - 1]
            if v5:
                if at >= end:
                    raise MalformedPacket("PUBLISH without its property length")
                props = buf[at]
                if props < 0x80:
                    at += 1 + props
                else:
                    props, at = _inner_varint(buf, at, end)
                    at += props
                if at > end:
                    raise MalformedPacket("a property length runs past the end of its PUBLISH")
            elif at > end:
                raise MalformedPacket("PUBLISH shorter than its header")
            publishes.append((buf[start + 2 : topic_end], buf[at:end], mid, qos))
        elif PUBACK <= kind <= PUBCOMP and kind != PUBREL:
            if length < 2:
                raise MalformedPacket("acknowledgement without a packet id")
            code = buf[start + 2] if length > 2 else 0
            acknowledged.append((kind, (buf[start] << 8) | buf[start + 1], code))
        elif kind == 0:
            raise MalformedPacket("packet type 0 is reserved")
        else:
            others.append((kind, buf[start:end]))
        pos = end
    return publishes, acknowledged, others, pos


def properties(body: bytes, at: int) -> tuple[dict[int, int], int]:
    """The numeric MQTT 5 properties of a packet body from `at` (the property length),
    and the position after them; text and binary ones are checked and skipped."""
    length, at = _inner_varint(body, at, len(body))
    end = at + length
    if end > len(body):
        raise MalformedPacket("a property length runs past the end of its packet")
    found: dict[int, int] = {}
    while at < end:
        prop = body[at]
        at += 1
        if prop in _BYTE_PROPS:
            width = 1
        elif prop in _WORD_PROPS:
            width = 2
        elif prop in _INT_PROPS:
            width = 4
        elif prop == 0x0B:  # subscription identifier
            found[prop], at = _inner_varint(body, at, end)
            continue
        elif prop in _TEXT_PROPS or prop == 0x26:
            for _ in range(2 if prop == 0x26 else 1):  # a user property is a pair
                if at + 2 > end:
                    raise MalformedPacket("a property runs past the end of its packet")
                at += 2 + ((body[at] << 8) | body[at + 1])
            if at > end:
                raise MalformedPacket("a property runs past the end of its packet")
            continue
        else:
            raise MalformedPacket(f"unknown property {prop:#04x}")
        if at + width > end:
            raise MalformedPacket("a property runs past the end of its packet")
        found[prop] = int.from_bytes(body[at : at + width], "big")
        at += width
    return found, end


def connack(body: bytes, v5: bool) -> tuple[bool, int, dict[int, int]]:
    """(session present, return/reason code, MQTT 5 numeric properties)."""
    if len(body) < 2:
        raise MalformedPacket("CONNACK too short")
    props: dict[int, int] = {}
    if v5 and len(body) > 2:
        props, end = properties(body, 2)
        if end != len(body):
            raise MalformedPacket("CONNACK longer than its properties")
    return bool(body[0] & 1), body[1], props


def suback(body: bytes, v5: bool) -> tuple[int, list[int]]:
    """(packet id, a return/reason code per topic)."""
    if len(body) < 3:
        raise MalformedPacket("SUBACK too short")
    at = 2
    if v5:
        _, at = properties(body, 2)
    return (body[0] << 8) | body[1], list(body[at:])


def packet_id(body: bytes) -> int:
    """The packet id at the start of a PUBREL body."""
    if len(body) < 2:
        raise MalformedPacket("packet without its packet id")
    return (body[0] << 8) | body[1]
