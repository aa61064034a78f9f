"""The `file` output: JSON lines appended to a file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from wireway import formats
from wireway.connectors.base import Output
from wireway.connectors.file.config import FileOutputConfig
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.registry import register_output


@register_output("file", config=FileOutputConfig)
class FileOutput(Output):
    """Append each message as one JSON line (the envelope, or the payload only)."""

    fd: int | None = None

    async def open(self) -> None:
        path = Path(self.config.address)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _write(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        if self.config.fsync != "never":
            os.fsync(self.fd)

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        if self.fd is None:
            raise RetryableError("file is not open")
        payload_only = self.config.payload_only
        try:
            if self.config.fsync == "always":
                for msg in batch:
                    await asyncio.to_thread(self._write, formats.encode_lines([msg], payload_only))
            else:
                await asyncio.to_thread(self._write, formats.encode_lines(batch, payload_only))
        except OSError as exc:
            raise RetryableError(f"cannot write {self.config.address}: {exc.strerror}") from exc
        return None

    async def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
