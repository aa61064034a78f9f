"""`msgpack`: one MessagePack document per unit."""

from __future__ import annotations

import msgspec

from wireway.envelope import Message
from wireway.formats.codec import Codec, NoOptions, Record
from wireway.registry import register_format

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


@register_format("msgpack", config=NoOptions)
class MsgpackCodec(Codec):
    """One MessagePack document per unit (a datagram, a broker message, a file); a map
    with `messageId`, `timestamp` and `payload` is taken as an envelope, as with json.
    MessagePack bytes values arrive as base64 text (the envelope is JSON)."""

    name = "msgpack"
    content_type = "application/msgpack"

    def decode(self, data: bytes, where: str = "") -> list[Record]:
        try:
            return [Record(_jsonable(_dec.decode(data)), None, where)]
        except msgspec.DecodeError as exc:
            return [Record(None, f"{where + ': ' if where else ''}invalid MessagePack: {exc}", where)]

    def encode(self, msg: Message, payload_only: bool = False) -> bytes:
        return _enc.encode(msg.payload if payload_only else msg)


def _jsonable(value: object) -> object:
    """What a JSON envelope can hold: bytes as base64, map keys as strings."""
    return msgspec.to_builtins(value, str_keys=True)
