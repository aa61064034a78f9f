"""The format contract: how bytes on a wire become values, and messages become bytes.

A format is registered like a connector (`@register_format("csv", config=CsvOptions)`,
entry point `format.csv`) and any input or output can use it with its `format:` key:
`format: csv`, or a mapping with the format's options, `format: {type: csv, columns:
[a, b]}`. The loader checks the options (errors at their line) and gives the entry a
`new_codec()` that makes one `Codec` per stream: a codec may keep state between the
records of one stream (csv's header row), so an input makes one per file, connection
or subscription, an output one per file it writes.

Two ways to frame a stream: a `lines` format (jsonl, text, csv) has one record per
line, and a stream input (a file tail, a pipe, a process's stdout, a TCP connection)
hands it complete lines with `decode_line`; every format also decodes a whole unit
(a datagram, a broker message, a file read at once, an HTTP body) with `decode`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import msgspec

from wireway.envelope import Message


class Record(NamedTuple):
    """One decoded value, or why the bytes it came from are not one (`error`), and
    where it was (`line 12`), for the DLQ entry of a malformed record."""

    value: Any
    error: str | None = None
    where: str = ""


class Codec(ABC):
    """One stream's decoder and encoder for a format."""

    name: ClassVar[str] = ""
    lines: ClassVar[bool] = False  # records are lines of a stream
    content_type: ClassVar[str] = "application/octet-stream"

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def decode(self, data: bytes, where: str = "") -> list[Record]:
        """The records of one whole unit. A lines format decodes it line by line."""
        if not self.lines:
            raise NotImplementedError
        out: list[Record] = []
        for number, line in enumerate(data.split(b"\n"), 1):
            place = f"{where} line {number}".strip()
            record = self.decode_line(line.removesuffix(b"\r"), place)
            if record is not None:
                out.append(record)
        return out

    def decode_line(self, line: bytes, where: str = "") -> Record | None:
        """One line of a stream, without its newline; None for a line that holds no
        record (a blank line, a header row). Only lines formats implement it."""
        raise NotImplementedError(f"format `{self.name}` is not line by line")

    @abstractmethod
    def encode(self, msg: Message, payload_only: bool = False) -> bytes:
        """One message as one record, without framing (no newline). Formats that
        cannot carry an envelope (csv, text, binary) always write the payload.
        Raises ValueError for a message the format cannot carry (a `binary` payload
        that is not base64): the output dead-letters that message."""

    def header(self, first: Message | None = None) -> bytes:
        """What starts a new file or stream before its first record `first` (csv's
        header row with its newline), else b""."""
        return b""

    def encode_lines(self, batch: list[Message], payload_only: bool = False) -> bytes:
        """Records one per line, each newline-terminated (no header)."""
        return b"".join(self.encode(m, payload_only) + b"\n" for m in batch)


CodecFactory = Callable[[], Codec]


class NoOptions(msgspec.Struct, forbid_unknown_fields=True):
    """This format takes no options."""
