"""Lines and whole files as the values `ingest` takes, and the errors for the DLQ."""

from __future__ import annotations

from typing import Any

from wireway.envelope import Message, is_envelope
from wireway.formats.codec import Codec, Record

Errors = list[tuple[Any, str]]


class Shaper:
    """Turns decoded records into messages: an id that is the same when the record is
    read again (`<the file's generation>-<line>`: the generation is made when the
    file is first seen and stored with its position), and the file and line under
    the keys the entry names."""

    def __init__(self, source: str, file_field: str | None, line_field: str | None) -> None:
        self.source = source
        self.file_field = file_field
        self.line_field = line_field
        self.tags = file_field is not None or line_field is not None

    def tag(self, value: Any, path: str, line: int) -> Any:
        if not isinstance(value, dict):
            value = {"value": value}
        if self.file_field is not None:
            value[self.file_field] = path
        if self.line_field is not None:
            value[self.line_field] = line
        return value

    def one(self, value: Any, gen: str, number: int, path: str) -> Any:
        if self.tags:
            value = self.tag(value, path, number)
        if is_envelope(value):
            return value
        return Message(f"{gen}-{number}", "", value, self.source)

    def lines(
        self, codec: Codec, lines: list[bytes], first: int, path: str, gen: str, max_line: int
    ) -> tuple[list[Any], Errors]:
        """Decode each line; lines too long or not decodable become errors naming
        the file and line."""
        values: list[Any] = []
        errors: Errors = []
        decode = codec.decode_line
        tags = self.tags
        source = self.source
        for number, line in enumerate(lines, first):
            if len(line) > max_line:
                errors.append((_text(line[:1024]), f"{path} line {number}: longer than {max_line} bytes"))
                continue
            record = decode(line.removesuffix(b"\r"))
            if record is None:
                continue
            if record.error is not None:
                # formats put the `where` they were given (none here) before the reason
                reason = record.error.removeprefix(": ")
                errors.append((_text(line), f"{path} line {number}: {reason}"))
                continue
            value = record.value
            if tags:
                value = self.tag(value, path, number)
            if type(value) is dict and is_envelope(value):
                values.append(value)
            else:
                values.append(Message(f"{gen}-{number}", "", value, source))
        return values, errors

    def records(self, records: list[Record], path: str, gen: str) -> tuple[list[Any], Errors]:
        """A whole unit's records (its `where` says the line, for lines formats)."""
        values: list[Any] = []
        errors: Errors = []
        for number, record in enumerate(records, 1):
            if record.error is not None:  # the file itself is kept (in failed/): name it
                errors.append(({"file": path}, f"{path}: {record.error.removeprefix(': ')}"))
                continue
            values.append(self.one(record.value, gen, number, path))
        return values, errors


def dropped(numbers: list[int], path: str, max_line: int) -> Errors:
    """Errors for over-long lines skipped without keeping their bytes."""
    out: Errors = [(None, f"{path} line {n}: longer than {max_line} bytes") for n in numbers]
    numbers.clear()
    return out


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace")
