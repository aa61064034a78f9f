"""The few MQTT 3.1.1 / 5 packets a subscriber needs, encoded and parsed by hand.

The mqtt input reads tens of thousands of PUBLISH packets a second. paho-mqtt
handles each one with several socket reads and Python objects (an MQTTMessage, a
message info with its own lock, a topic-matcher walk); here one `parse` call walks
every complete packet of a socket read, and the PUBACKs of a batch go out as one
write. Only what a subscriber sends and receives is here: CONNECT/CONNACK,
SUBSCRIBE/SUBACK, PUBLISH (in), PUBACK/PUBREC/PUBREL/PUBCOMP, PINGREQ/PINGRESP,
DISCONNECT.
"""

from __future__ import annotations

import struct

CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, PINGRESP, DISCONNECT = (
    2,
    3,
    4,
    5,
    6,
    7,
    9,
    13,
    14,
)
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

# (topic, payload, packet id, qos) of one received PUBLISH; the topic stays bytes
# until the input looks at it (invalid UTF-8 there goes to the dead-letter queue)
Publish = tuple[bytes, bytes, int, int]

_CONNACK_311 = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
_REASONS_5 = {
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
    0x97: "quota exceeded",
    0x9E: "shared subscriptions not supported",
    0xA1: "subscription identifiers not supported",
    0xA2: "wildcard subscriptions not supported",
}


class MalformedPacket(ValueError):
    """The broker sent bytes that are not MQTT."""


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
) -> bytes:
    """A CONNECT packet (no will)."""
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    body = _text("MQTT") + bytes((5 if v5 else 4, flags)) + keepalive.to_bytes(2, "big")
    if v5:
        props = b""
        if session_expiry:
            props += b"\x11" + session_expiry.to_bytes(4, "big")
        if receive_maximum:
            props += b"\x21" + min(receive_maximum, 65535).to_bytes(2, "big")
        body += varint(len(props)) + props
    body += _text(client_id)
    if username is not None:
        body += _text(username)
    if password is not None:
        body += _text(password)
    return _packet(0x10, body)


def subscribe(packet_id: int, topics: list[str], qos: int, *, v5: bool) -> bytes:
    """A SUBSCRIBE packet; with MQTT 5, retained messages only for a new subscription."""
    options = qos | (0x10 if v5 else 0)
    body = packet_id.to_bytes(2, "big") + (b"\x00" if v5 else b"")
    for topic in topics:
        body += _text(topic) + bytes((options,))
    return _packet(0x82, body)


def acks(items: list[tuple[int, int]]) -> bytes:
    """PUBACK (QoS 1) or PUBREC (QoS 2) for each (packet id, qos), as one write."""
    words = [(0x40020000 if qos == 1 else 0x50020000) | mid for mid, qos in items if qos]
    return struct.pack(f">{len(words)}I", *words)


def pubcomp(packet_id: int) -> bytes:
    return b"\x70\x02" + packet_id.to_bytes(2, "big")


def reason_text(code: int, v5: bool) -> str:
    """A CONNACK / SUBACK / DISCONNECT code in words."""
    if v5:
        return _REASONS_5.get(code, f"reason code {code:#04x}")
    return _CONNACK_311.get(code, f"return code {code}")


def _varint_at(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it), or (-1, pos) when the buffer ends first."""
    value, shift = 0, 0
    for i in range(pos, min(pos + 4, len(buf))):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    if len(buf) - pos >= 4:
        raise MalformedPacket("remaining length longer than 4 bytes")
    return -1, pos


def parse(buf: bytes, v5: bool) -> tuple[list[Publish], list[tuple[int, bytes]], int]:
    """The complete packets at the start of `buf`.

    Returns (publishes, other packets as (type, body), bytes consumed); an
    incomplete packet at the end is left for the next read.
    """
    publishes: list[Publish] = []
    others: list[tuple[int, bytes]] = []
    pos, size = 0, len(buf)
    while size - pos >= 2:
        first = buf[pos]
        length = buf[pos + 1]
        if length < 0x80:
            start = pos + 2
        else:
            length, start = _varint_at(buf, pos + 1)
            if length < 0:
                break
        end = start + length
        if end > size:
            break
        if first >> 4 == PUBLISH:
            qos = (first >> 1) & 3
            at = start + 2 + ((buf[start] << 8) | buf[start + 1])
            topic = buf[start + 2 : at]
            mid = 0
            if qos:
                if at + 2 > end:
                    raise MalformedPacket("PUBLISH shorter than its header")
                mid = (buf[at] << 8) | buf[at + 1]
                at += 2
            if v5:
                props, at = _varint_at(buf, at)
                at += props
            if at > end or qos == 3:
                raise MalformedPacket("PUBLISH shorter than its header")
            publishes.append((topic, buf[at:end], mid, qos))
        else:
            others.append((first >> 4, buf[start:end]))
        pos = end
    return publishes, others, pos


def connack(body: bytes, v5: bool) -> tuple[bool, int]:
    """(session present, return/reason code)."""
    if len(body) < 2:
        raise MalformedPacket("CONNACK too short")
    return bool(body[0] & 1), body[1]


def suback(body: bytes, v5: bool) -> tuple[int, list[int]]:
    """(packet id, a return/reason code per topic)."""
    if len(body) < 3:
        raise MalformedPacket("SUBACK too short")
    at = 2
    if v5:
        props, at = _varint_at(body, 2)
        at += props
    return (body[0] << 8) | body[1], list(body[at:])
