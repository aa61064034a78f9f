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
    """Write JSON lines to standard output and flush."""

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        sys.stdout.buffer.write(formats.encode_lines(batch, self.config.payload_only))
        sys.stdout.buffer.flush()
        return None
