"""A batch of rows as the body of one PostgreSQL `COPY ... FROM STDIN (FORMAT text)`.

The server's cheapest way in: against the one-jsonb-document INSERT it saves the jsonb
parse of the whole batch and the per-element extraction, about a quarter of
PostgreSQL's CPU per sensor reading (`benchmarks/pg_store.py --path copy|json`). The
client writes the text itself: asyncpg's binary COPY costs it about three times more.

Only values that reach the table exactly as the other paths would put them there are
written; for anything else `Layout.encode` answers None and the caller takes another
path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

# COPY text escapes: backslash, and the row and column separators
_ESCAPE = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_FIRST = datetime.min.replace(tzinfo=UTC)  # asyncpg sends these two as -infinity / infinity
_LAST = datetime.max.replace(tzinfo=UTC)
_NULL = b"\\N"
_BACKSLASH = ord("\\")
_UNSET = object()
_encode_json = msgspec.json.Encoder().encode


class _Unfit(Exception):
    """A value that text COPY would not write exactly as the other paths do."""


def _text(v: Any) -> bytes:
    if type(v) is not str:
        raise _Unfit
    if v.isprintable() and "\\" not in v:  # isprintable is False for \t \n \r and NUL
        return v.encode()
    if "\x00" in v:  # PostgreSQL text cannot hold NUL: the other paths report it
        raise _Unfit
    return v.translate(_ESCAPE).encode()


def _json(v: Any) -> bytes:
    data = _encode_json(v)
    if data == b"null":  # a NaN or an infinity (None never gets here): the other paths decide
        raise _Unfit
    # msgspec escapes control characters inside strings; only backslashes remain
    # (`92 in data` is a memchr; `b"\\" in data` a general search, much slower)
    return data.replace(b"\\", b"\\\\") if _BACKSLASH in data else data


def exact_utc(v: Any) -> bool:
    """An aware UTC datetime that every PostgreSQL path writes as the same instant (a
    naive one is read as local time; the first and last ones become -infinity/infinity)."""
    return type(v) is datetime and v.tzinfo is UTC and _FIRST < v < _LAST


def _time(v: Any) -> bytes:
    if not exact_utc(v):
        raise _Unfit
    return _encode_json(v)[1:-1]  # RFC 3339 with a Z, far cheaper than isoformat()


def _int(v: Any) -> bytes:
    if type(v) is not int:
        raise _Unfit
    return str(v).encode()


def _float(v: Any) -> bytes:
    if type(v) is not float or not math.isfinite(v):  # NaN and the infinities: the other paths decide
        raise _Unfit
    return repr(v).encode()  # the shortest text that reads back as the same double


def _bool(v: Any) -> bytes:
    if type(v) is not bool:
        raise _Unfit
    return b"t" if v else b"f"


Encode = Callable[[Any], bytes]

# (database type, kind) -> how a value of that column is written
_WRITERS: dict[tuple[str, str], Encode] = {
    ("text", "text"): _text,
    ("text", "timestamp_text"): _text,
    ("text", "json_text"): _text,
    ("varchar", "text"): _text,
    ("varchar", "timestamp_text"): _text,
    ("varchar", "json_text"): _text,
    ("int2", "int"): _int,
    ("int4", "int"): _int,
    ("int8", "int"): _int,
    ("bool", "bool"): _bool,
    ("float8", "float"): _float,
    ("timestamptz", "timestamptz"): _time,
    ("jsonb", "json"): _json,
}


def writers(types: list[tuple[str, str]]) -> list[Encode] | None:
    """How each column is written, or None when one of them cannot go through text COPY."""
    out = []
    for key in types:
        fn = _WRITERS.get(key)
        if fn is None:
            return None
        out.append(fn)
    return out


class Layout:
    """The COPY of one table: the columns all rows of a message share come first and are
    encoded once per message (a reading's id, device, times and metadata), then the
    columns of each row (its sensor type and data)."""

    def __init__(self, names: list[str], fns: list[Encode], shared: list[int]) -> None:
        self.shared = [(i, fns[i]) for i in shared]
        self.own = [(i, fns[i]) for i in range(len(fns)) if i not in shared]
        self.names = [names[i] for i, _ in self.shared + self.own]

    def encode(self, messages: list[list[tuple[Any, ...]]]) -> bytes | None:
        """The rows (grouped by message) as COPY text, or None when a value must take
        another path."""
        shared, own = self.shared, self.own
        # a batch shares some values too (received_at): encoded once while they repeat
        seen: list[Any] = [_UNSET] * len(shared)
        done: list[bytes] = [b""] * len(shared)
        texts: dict[Any, bytes] = {}  # a row's own texts repeat (sensor types)
        lines = []
        try:
            for rows in messages:
                if not rows:
                    continue
                first = rows[0]
                for k, (i, fn) in enumerate(shared):
                    v = first[i]
                    if v is not seen[k]:
                        seen[k] = v
                        done[k] = _NULL if v is None else fn(v)
                head = [b"\t".join(done)] if shared else []
                for row in rows:
                    parts = head.copy()
                    for i, fn in own:
                        v = row[i]
                        if v is None:
                            parts.append(_NULL)
                        elif fn is _text:
                            data = texts.get(v)
                            if data is None:
                                data = texts[v] = _text(v)
                            parts.append(data)
                        else:
                            parts.append(fn(v))
                    lines.append(b"\t".join(parts))
        except (_Unfit, msgspec.EncodeError, TypeError, ValueError, OverflowError, UnicodeError):
            return None
        lines.append(b"")
        return b"\n".join(lines)
