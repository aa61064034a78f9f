"""Reading past a PUBLISH over `max_packet_size` without keeping its bytes.

Closing the connection instead would not help: the broker sends the message again
after the reconnect, forever. Skipped, it is acknowledged and goes to the dead-letter
queue with its topic and size.
"""

from __future__ import annotations

from wireway.connectors.mqtt.wire import MalformedPacket, Publish


class TooLarge(bytes):
    """The empty payload standing for one that was skipped; `size` is the packet's."""

    size: int = 0


class Skipper:
    """Reads past an oversized PUBLISH, keeping only its topic and packet id."""

    def __init__(self, first: int, length: int, total: int) -> None:
        self.qos = (first >> 1) & 3
        self.left = length  # bytes of the packet still to come
        self.total = total
        self.head = bytearray()

    def _want(self) -> int:
        """Bytes of the head needed: the topic's length, then the topic and packet id."""
        if len(self.head) < 2:
            return 2
        return 2 + ((self.head[0] << 8) | self.head[1]) + (2 if self.qos else 0)

    def feed(self, data: bytes) -> tuple[Publish | None, bytes]:
        """(the PUBLISH once all of it went by, the bytes after it); raises
        MalformedPacket when its topic or packet id runs past its own end."""
        take = min(self.left, len(data))
        used = 0
        while used < take and len(self.head) < (want := self._want()):  # at most 2 rounds
            n = min(want - len(self.head), take - used)
            self.head += data[used : used + n]
            used += n
        self.left -= take
        rest = data[take:]
        if self.left:
            return None, rest
        if len(self.head) < 2:
            raise MalformedPacket("PUBLISH shorter than its topic")
        end = 2 + ((self.head[0] << 8) | self.head[1])
        mid = 0
        if self.qos:
            if len(self.head) < end + 2:
                raise MalformedPacket("PUBLISH shorter than its topic and packet id")
            mid = (self.head[end] << 8) | self.head[end + 1]
        elif len(self.head) < end:
            raise MalformedPacket("PUBLISH shorter than its topic")
        payload = TooLarge()
        payload.size = self.total
        return (bytes(self.head[2:end]), payload, mid, self.qos), rest
