"""Reading and decoding a request body that may be hostile: bounded in size, time,
nesting depth, and refused (never a 500) when it is not plain JSON.

Each refusal is a `Refused` with the status to answer, a short `kind` for counters
(`too_large`, `body_timeout`, `too_deep`, `duplicate_key`, `invalid_json`) and a
message for the sender.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request

MAX_DEPTH = 64  # nesting levels of arrays and objects a JSON body may have
TIMED_OUT = "wireway.timed_out"  # set in the scope by the server when a body came too slowly

_decoder = msgspec.json.Decoder()
_encode = msgspec.json.encode
# every digit to "0", anything else to " ": a run of 20 zeros is a number (or a string)
# that may not fit in 64 bits
_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_DIGITS = b"0" * 20
_INT_RANGE = (-(2**63), 2**64 - 1)


class Refused(Exception):
    """A body refused before any message was made of it."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


async def read_body(request: Request, limit: int) -> bytes:
    """The body, at most `limit` bytes (`Refused` 413), or `Refused` 408 when the
    server cut a slow body off (it has answered 408 already)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Refused(413, "too_large", f"body larger than {limit} bytes")
    chunks = bytearray()
    try:
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                raise Refused(413, "too_large", f"body larger than {limit} bytes")
    except ClientDisconnect:
        if request.scope.get(TIMED_OUT):
            raise Refused(408, "body_timeout", "body not received in time") from None
        raise Refused(400, "disconnected", "client went away before the body was complete") from None
    return bytes(chunks)


def decode_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """One JSON document, refused (400) when it is malformed (invalid UTF-8, NaN or
    Infinity, a number beyond a float's range or an integer beyond 64 bits), nested
    deeper than `max_depth`, or an object repeats a key (parsers disagree on which
    copy wins, and on integers that big)."""
    try:
        value = _decoder.decode(raw)
    except RecursionError:
        raise Refused(400, "too_deep", f"JSON nested deeper than {max_depth} levels") from None
    except msgspec.DecodeError as exc:
        raise Refused(400, "invalid_json", f"invalid JSON: {exc}") from None
    if raw.count(b"[") + raw.count(b"{") > max_depth and _deeper(value, max_depth):
        raise Refused(400, "too_deep", f"JSON nested deeper than {max_depth} levels")
    if raw.count(b":") and _repeats_a_key(raw, value):
        raise Refused(400, "duplicate_key", "invalid JSON: an object repeats a key")
    if _LONG_DIGITS in raw.translate(_DIGITS) and _huge_int(value):
        raise Refused(400, "invalid_json", "invalid JSON: an integer out of range (beyond 64 bits)")
    return value


def decode_lines(raw: bytes, max_depth: int = MAX_DEPTH) -> list[tuple[int, Any, str | None]]:
    """JSON lines: (line number, value, error) for each non-empty line."""
    out: list[tuple[int, Any, str | None]] = []
    for n, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            out.append((n, decode_json(line, max_depth), None))
        except Refused as exc:
            out.append((n, None, f"line {n}: {exc.message}"))
    return out


def _deeper(value: Any, levels: int) -> bool:
    """More than `levels` levels of containers (walked only when the brackets
    counted in the body allow that many)."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return False
    if levels <= 0:
        return True
    items = value.values() if kind is dict else value
    for item in items:
        t = type(item)
        if (t is dict or t is list) and _deeper(item, levels - 1):
            return True
    return False


def _huge_int(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        low, high = _INT_RANGE
        return not low <= value <= high
    if kind is dict:
        return any(_huge_int(item) for item in value.values())
    if kind is list:
        return any(_huge_int(item) for item in value)
    return False


def _repeats_a_key(raw: bytes, value: Any) -> bool:
    """Whether an object of `raw` repeats a key (the decoded value kept the last).

    Without escapes a body has as many colons as its compact re-encoding unless a
    key-value pair was dropped; a body with escapes is checked key by key.
    """
    if b"\\" not in raw:
        return raw.count(b":") != _encode(value).count(b":")
    try:
        json.loads(raw, object_pairs_hook=_unique)
    except _Repeated:
        return True
    except ValueError:  # what msgspec decoded and json does not (never seen): keep it
        return False
    return False


class _Repeated(Exception):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _Repeated
    return found
