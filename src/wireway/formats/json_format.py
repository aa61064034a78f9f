"""`json` (one document per unit) and `jsonl` (one document per line)."""

from __future__ import annotations

import msgspec

from wireway.envelope import Message
from wireway.formats.codec import Codec, NoOptions, Record
from wireway.registry import register_format

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


def _decode(data: bytes, where: str) -> Record:
    try:
        return Record(_dec.decode(data), None, where)
    except msgspec.DecodeError as exc:
        return Record(None, f"{where + ': ' if where else ''}invalid JSON: {exc}", where)


@register_format("json", config=NoOptions)
class JsonCodec(Codec):
    """One JSON document per unit (a datagram, a broker message, a file); an envelope
    (an object with `messageId`, `timestamp` and `payload`) is taken as it is."""

    name = "json"
    content_type = "application/json"

    def decode(self, data: bytes, where: str = "") -> list[Record]:
        return [_decode(data, where)]

    def decode_line(self, line: bytes, where: str = "") -> Record | None:
        # on a stream (a tail, a pipe) a json document is one line, as jsonl
        return _decode(line, where) if line.strip() else None

    def encode(self, msg: Message, payload_only: bool = False) -> bytes:
        return _enc.encode(msg.payload if payload_only else msg)


@register_format("jsonl", config=NoOptions)
class JsonLinesCodec(JsonCodec):
    """One JSON document per line; blank lines are skipped."""

    name = "jsonl"
    lines = True
    content_type = "application/x-ndjson"

    def decode(self, data: bytes, where: str = "") -> list[Record]:
        return Codec.decode(self, data, where)
