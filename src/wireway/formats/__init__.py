"""Wire formats: `json` (one document per message, or an array for a batch) and `jsonl`."""

from __future__ import annotations

from typing import Any

import msgspec

from wireway.envelope import Message

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


def body(msg: Message, payload_only: bool) -> Any:
    """What goes on the wire for one message: the whole envelope or its payload."""
    return msg.payload if payload_only else msg


def encode_lines(batch: list[Message], payload_only: bool = False) -> bytes:
    """One JSON document per line, newline-terminated (jsonl)."""
    buf = bytearray()
    for msg in batch:
        _enc.encode_into(msg.payload if payload_only else msg, buf, -1)
        buf += b"\n"
    return bytes(buf)


def encode_one(msg: Message, payload_only: bool = False) -> bytes:
    return _enc.encode(msg.payload if payload_only else msg)


def encode_array(batch: list[Message], payload_only: bool = False) -> bytes:
    return _enc.encode([m.payload if payload_only else m for m in batch])


def decode_json(data: bytes) -> Any:
    """One JSON document (raises msgspec.DecodeError)."""
    return _dec.decode(data)


def decode_lines(data: bytes) -> list[tuple[int, Any, str | None]]:
    """JSON lines: (line number, value, error) for each non-empty line."""
    out: list[tuple[int, Any, str | None]] = []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            out.append((n, _dec.decode(line), None))
        except msgspec.DecodeError as exc:
            out.append((n, None, f"line {n}: invalid JSON: {exc}"))
    return out
