"""`binary`: raw bytes, one unit one message, carried in the envelope as base64."""

from __future__ import annotations

import base64
import binascii

import msgspec

from wireway.envelope import Message
from wireway.formats.codec import Codec, NoOptions, Record
from wireway.registry import register_format


@register_format("binary", config=NoOptions)
class BinaryCodec(Codec):
    """Raw bytes: a unit (a datagram, a broker message, a file) becomes one message whose
    payload is the bytes in base64 (JSON has no bytes); written back decoded. A payload
    that is not a base64 string is written as its JSON."""

    name = "binary"

    def decode(self, data: bytes, where: str = "") -> list[Record]:
        return [Record(base64.b64encode(data).decode("ascii"), None, where)]

    def encode(self, msg: Message, payload_only: bool = False) -> bytes:
        value = msg.payload
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("the payload is not base64 text") from None
        return msgspec.json.encode(value)
