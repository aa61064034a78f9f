"""The standard message envelope (camelCase on the wire, snake_case in Python)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

Priority = Literal["high", "normal", "low"]
# "data", "control", "event", "error", or an application's own kind ("sensor-data", "alert")
MessageType = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9._-]{0,63}$")]
PRIORITY_RANK: dict[str, int] = {"high": 0, "normal": 1, "low": 2}

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Metadata(msgspec.Struct, rename="camel"):
    """Delivery hints carried with a message."""

    priority: Priority = "normal"
    ttl: float | None = None
    retry_count: int = 0
    correlation_id: str | None = None


class Message(msgspec.Struct, rename="camel", weakref=True):
    """One message as it travels through a pattern (weakly referable: outputs reading
    one message back from the buffer file share one decoded copy, see Store.load)."""

    message_id: str
    timestamp: str
    payload: Any
    source: str = ""
    destination: str = ""
    message_type: MessageType = "data"
    version: str = "1.0"
    metadata: Metadata = msgspec.field(default_factory=Metadata)

    def expired(self, now: float | None = None) -> bool:
        """True when the TTL (counted from `timestamp`) has run out."""
        ttl = self.metadata.ttl
        if ttl is None:
            return False
        try:
            born = parse_timestamp(self.timestamp)
        except ValueError:
            return False
        return (now if now is not None else time.time()) > born + ttl

    def to_context(self) -> dict[str, Any]:
        """The envelope as a CEL / JSON-schema friendly dict (wire names)."""
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


class _IdState:
    last_ms = 0
    rand = 0


def new_message_id() -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, monotonic within a millisecond."""
    ms = time.time_ns() // 1_000_000
    if ms == _IdState.last_ms:
        _IdState.rand = (_IdState.rand + 1) & ((1 << 80) - 1)
    else:
        _IdState.last_ms = ms
        _IdState.rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | _IdState.rand
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def now_rfc3339() -> str:
    """The current time, RFC 3339 in UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?$")


def _parse_datetime(value: str) -> datetime:
    """An aware datetime for an RFC 3339 timestamp, exact to the microsecond (raises
    ValueError); a timestamp without an offset is taken as UTC."""
    if isinstance(value, str) and value.isascii():
        m = _UTC_Z(value)
        if m is not None and m.end() == len(value):
            # the common UTC 'Z' text, 0-6 fraction digits: fromisoformat reads it as is
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass  # e.g. month 13: the general path words the error
    return _parse_rfc3339(value)


def _parse_rfc3339(value: str) -> datetime:
    """_parse_datetime for any RFC 3339 text (offsets, 't', ' ', long fractions)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    text = value.replace("Z", "+00:00").replace("z", "+00:00").replace(" ", "T").replace("t", "T")
    if "." in text:  # Python 3.11 takes at most 6 fraction digits
        head, _, tail = text.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        text = f"{head}.{tail[: min(digits, 6)]}{tail[digits:]}"
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=4096)  # a batch shares its arrival time: most calls repeat
def parse_timestamp(value: str) -> float:
    """Seconds since the epoch for an RFC 3339 timestamp (raises ValueError).

    A timestamp without an offset is taken as UTC.
    """
    return _parse_datetime(value).timestamp()


def timestamp_seconds(value: str) -> float:
    """parse_timestamp without the cache, for texts seen once (a reading's own time):
    a miss only costs the cache's bookkeeping."""
    return _parse_datetime(value).timestamp()


# Fixed namespace for ids derived from content, so a redelivery gets the same id.
ID_NAMESPACE = uuid.UUID("6f1c3a52-8f0e-4c7e-9a57-2f1d1c0b7e11")


def canonical_timestamp(value: str) -> str:
    """RFC 3339 in UTC with microseconds; the same instant always gives the same text
    (and two readings a fraction of a millisecond apart stay two readings)."""
    m = _UTC_Z(value)
    if m is None:
        return _exact_utc(value)
    # already UTC 'Z' (the common case): pad the fraction, no parsing. `end` stops
    # before the Z's trailing newline that `$` allows, which the text never kept.
    end = m.end()
    if end == 27:  # six fraction digits: already canonical
        return value if len(value) == 27 else value[:27]
    if end == 20:  # no fraction
        return value[:19] + ".000000Z"
    return value[: end - 1].ljust(26, "0") + "Z"


# `\d\d` rather than `\d{2}`: the same language, measurably cheaper to match.
_UTC_Z = re.compile(r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z$").match


def _exact_utc(value: str) -> str:
    """The slow path: exact datetime arithmetic (no float), any offset or separator."""
    dt = _parse_datetime(value).astimezone(UTC)
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


# SHA-1 state after the namespace bytes: each id only hashes its own name on top.
_ID_PREFIX = hashlib.sha1(ID_NAMESPACE.bytes)
# the hex digit holding the RFC 4122 variant bits (10xx), by the digit the hash gave
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def stable_id(*parts: object) -> str:
    """A UUIDv5 over the parts (timestamps should be canonical first).

    A contract: always exactly `str(uuid.uuid5(ID_NAMESPACE, "|".join(map(str, parts))))`
    (redeliveries are recognised by it across versions; a property test checks it).
    Computed without uuid.UUID objects, about three times cheaper.
    """
    h = _ID_PREFIX.copy()
    h.update("|".join(map(str, parts)).encode())
    x = h.hexdigest()
    # the first 16 bytes, version nibble set to 5 and variant bits to 10, 8-4-4-4-12
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Message)


def encode(msg: Message) -> bytes:
    """The envelope as JSON bytes."""
    return _encoder.encode(msg)


def decode(data: bytes | str) -> Message:
    """Parse envelope JSON (raises msgspec.ValidationError / DecodeError)."""
    return _decoder.decode(data)


def is_envelope(value: Any) -> bool:
    """A JSON object with messageId, messageType and payload is an envelope."""
    return isinstance(value, dict) and "messageId" in value and "messageType" in value and "payload" in value


def from_value(value: Any, *, source: str, arrived: str | None = None) -> Message:
    """Take an envelope as is (validated) or wrap a bare payload.

    Raises:
        ValueError: the value looks like an envelope but a field is invalid; the
            message names the field.
    """
    if is_envelope(value):
        data = dict(value)
        data.setdefault("timestamp", arrived or now_rfc3339())
        try:
            msg = msgspec.convert(data, Message)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid envelope: {exc}") from exc
        try:
            parse_timestamp(msg.timestamp)
        except ValueError as exc:
            raise ValueError("invalid envelope: timestamp is not RFC 3339 - at `$.timestamp`") from exc
        if not msg.message_id:
            raise ValueError("invalid envelope: messageId is empty - at `$.messageId`")
        return msg
    return Message(
        message_id=new_message_id(),
        timestamp=arrived or now_rfc3339(),
        payload=value,
        source=source,
    )
