"""The `stdout` output."""

from __future__ import annotations

import sys

from wireway import formats
from wireway.connectors.base import Output
from wireway.connectors.stdout.config import StdoutOutputConfig
from wireway.envelope import Message
from wireway.registry import register_output


@register_output("stdout", config=StdoutOutputConfig)
class StdoutOutput(Output):
    """Write one record per line to standard output (JSON lines by default) and flush."""

    formats = None  # any; a format's header (csv's) comes first

    async def open(self) -> None:
        self.codec = None if self.iface.format in ("json", "jsonl") else self.iface.new_codec()
        self.started = False

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        payload_only = self.config.payload_only
        if self.codec is None:
            sys.stdout.buffer.write(formats.encode_lines(batch, payload_only))
            sys.stdout.buffer.flush()
            return None
        refused: dict[int, str] = {}
        out = bytearray()
        for i, msg in enumerate(batch):
            try:
                record = self.codec.encode(msg, payload_only)
            except ValueError as exc:
                refused[i] = str(exc)
                continue
            if not self.started:
                out += self.codec.header(msg)
                self.started = True
            out += record + b"\n"
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
        return refused or None
