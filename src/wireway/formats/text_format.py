"""`text`: one line, one message, its payload the line as a string."""

from __future__ import annotations

import msgspec

from wireway.envelope import Message
from wireway.formats.codec import Codec, Record
from wireway.registry import register_format


class TextOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Options of the `text` format.

    Bytes that are not valid in `encoding` are replaced (U+FFFD), so a log line with
    one stray byte is still delivered; blank lines are skipped unless `keep_blank`.
    """

    encoding: str = "utf-8"
    keep_blank: bool = False

    def __post_init__(self) -> None:
        try:
            "".encode(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding `{self.encoding}` - at `$.encoding`") from None


@register_format("text", config=TextOptions)
class TextCodec(Codec):
    """One line of text per message (payload: the line, without its newline); written
    back as the payload string (any other payload as its JSON)."""

    name = "text"
    lines = True
    content_type = "text/plain; charset=utf-8"
    options: TextOptions

    def __init__(self, options: TextOptions | None = None) -> None:
        super().__init__(options or TextOptions())

    def decode_line(self, line: bytes, where: str = "") -> Record | None:
        if not self.options.keep_blank and not line.strip():
            return None
        return Record(line.decode(self.options.encoding, "replace"), None, where)

    def encode(self, msg: Message, payload_only: bool = False) -> bytes:
        value = msg.payload
        if isinstance(value, str):
            return value.replace("\n", " ").encode(self.options.encoding, "replace")
        return msgspec.json.encode(value)
