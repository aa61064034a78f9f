"""Cutting a TAK stream into events.

A TAK client streams XML events one after the other with nothing between them but
perhaps whitespace and an `<?xml ...?>` declaration, so an event ends after its
`</event>` (as pytak and TAK Server read it). After a protocol negotiation the same
connection may carry TAK protocol version 1 frames instead: `0xbf`, the protobuf's
length as a varint, the protobuf. Each event is handed on with its own bytes (the
declaration or the frame header included), which the `cot` format decodes.
"""

from __future__ import annotations

from wireway.connectors.framing import snippet

MAGIC = 0xBF
END = b"</event>"
BOM = b"\xef\xbb\xbf"  # a byte order mark some writers put first
Refused = tuple[str, str]  # (start of the bytes, why), for the dead-letter queue


def varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """(value, position after it) of the varint at `pos`; None while incomplete.
    ValueError for one longer than 10 bytes."""
    value = shift = 0
    for i in range(pos, min(len(data), pos + 10)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    if len(data) - pos >= 10:
        raise ValueError("a frame length longer than 10 bytes")
    return None


class EventDeframer:
    """`feed(chunk)` returns the complete events and the bytes refused (too long, or
    not an event); at most about `limit` bytes are held between calls."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rest = b""
        self.skip = 0  # bytes of an oversized protocol frame still to pass over
        self.discard = False  # inside an oversized XML event: drop up to its `</event>`

    def feed(self, chunk: bytes) -> tuple[list[bytes], list[Refused]]:
        data = self.rest + chunk
        events: list[bytes] = []
        refused: list[Refused] = []
        pos = 0
        while pos < len(data):
            if self.skip:
                taken = min(self.skip, len(data) - pos)
                self.skip -= taken
                pos += taken
                continue
            if self.discard:
                end = data.find(END, pos)
                if end < 0:  # keep only what may be the start of `</event>`
                    pos = max(pos, len(data) - len(END) + 1)
                    break
                pos, self.discard = end + len(END), False
                continue
            while pos < len(data) and data[pos] in b" \t\r\n\x00":
                pos += 1
            if pos == len(data):
                break
            if data[pos] == MAGIC:
                step = self._frame(data, pos, events, refused)
            else:
                step = self._xml(data, pos, events, refused)
            if step is None:
                break
            pos = step
        self.rest = data[pos:]
        return events, refused

    def _frame(self, data: bytes, pos: int, events: list[bytes], refused: list[Refused]) -> int | None:
        """A protocol v1 stream frame at `pos`: where the next one starts, or None
        while it is incomplete."""
        try:
            header = varint(data, pos + 1)
        except ValueError as exc:
            # no length to follow: what comes next cannot be found, so drop what is held
            refused.append((snippet(data[pos:]), f"TAK protocol stream: {exc}"))
            return len(data)
        if header is None:
            return None
        size, start = header
        if size > self.limit:
            refused.append(
                (snippet(data[pos : start + 64]), f"a frame of {size} bytes: over max_event_bytes")
            )
            self.skip = size
            return start
        if len(data) - start < size:
            return None
        events.append(data[pos : start + size])
        return start + size

    def _xml(self, data: bytes, pos: int, events: list[bytes], refused: list[Refused]) -> int | None:
        """An XML event starting at `pos`: where the next one starts, or None while
        its end has not arrived."""
        end = data.find(END, pos)
        if end < 0:
            if len(data) - pos > self.limit:
                refused.append((snippet(data[pos:]), f"an event over max_event_bytes ({self.limit})"))
                self.discard = True
                return max(pos, len(data) - len(END) + 1)
            return None
        end += len(END)
        if end - pos > self.limit:
            refused.append((snippet(data[pos:end]), f"an event over max_event_bytes ({self.limit})"))
            return end
        event = data[pos:end]
        start = event.find(b"<")
        if start > 0:  # bytes that are not XML before the event: refused, the event kept
            if event[:start] != BOM:
                refused.append((snippet(event[:start]), "not a CoT event"))
            event = event[start:]
        events.append(event)
        return end

    def end(self) -> list[Refused]:
        """What is left when the peer closes: an event cut short."""
        rest, self.rest = self.rest, b""
        if rest.strip(b" \t\r\n\x00") and not self.discard and not self.skip:
            return [(snippet(rest), "the connection closed inside an event")]
        return []
