"""The `pipe` output: lines written to a named pipe, waiting for a reader when none is there."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from typing import ClassVar

from wireway.connectors.base import Output
from wireway.connectors.lines import write_all
from wireway.connectors.pipe.config import PipeOutputConfig
from wireway.connectors.pipe.fifo import ensure_fifo
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.formats.codec import Codec
from wireway.observability import logging as log
from wireway.registry import register_output

logger = log.get("pipe")
FIRST_LOOK = 0.01  # seconds between the first two looks for a reader; doubled up to LAST_LOOK
LAST_LOOK = 0.25


@register_output("pipe", config=PipeOutputConfig)
class PipeOutput(Output):
    """Write each batch as lines to a FIFO once a reader has it open."""

    config: PipeOutputConfig
    formats: ClassVar[tuple[str, ...] | None] = None

    async def open(self) -> None:
        ensure_fifo(self.config)
        self.fd: int | None = None
        self.codec: Codec = self.iface.new_codec()
        self.fresh = True  # the current reader has not had the stream's header yet

    async def close(self) -> None:
        self.disconnect()

    def health(self) -> dict[str, str]:
        return {f"pipe:{self.name}": "up" if self.fd is not None else "down"}

    def disconnect(self) -> None:
        if getattr(self, "fd", None) is not None:
            assert self.fd is not None
            os.close(self.fd)
            self.fd = None

    async def connect(self) -> int:
        """The write end, opened once a reader is there (waiting up to `reader_wait`).

        A FIFO opened for writing without blocking fails with ENXIO while nobody reads
        it, and nothing announces a reader: look again after growing pauses.
        """
        if self.fd is not None:
            return self.fd
        path = self.config.path
        deadline = time.monotonic() + self.config.reader_wait
        pause = FIRST_LOOK
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise RetryableError(f"cannot open named pipe {path}: {exc.strerror}") from exc
                if time.monotonic() + pause > deadline:
                    raise RetryableError(f"no reader has named pipe {path} open") from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, LAST_LOOK)
                continue
            self.fd = fd
            self.codec = self.iface.new_codec()  # a new reader: a new stream
            self.fresh = True
            logger.info("named pipe has a reader", output=self.name, path=path)
            return fd

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        parts: list[bytes] = []
        refused: dict[int, str] = {}
        fd = await self.connect()
        for i, msg in enumerate(batch):
            try:
                parts.append(self.codec.encode(msg, self.config.payload_only) + b"\n")
            except ValueError as exc:
                refused[i] = str(exc)
        data = b"".join(parts)
        if self.fresh:
            first = next((m for i, m in enumerate(batch) if i not in refused), None)
            data = self.codec.header(first) + data
        try:
            await write_all(fd, data)
        except asyncio.CancelledError:
            # (the delivery's timeout) the pipe may end in half a record: close it, so
            # the reader sees the end of this stream and the retry starts a new one
            self.disconnect()
            raise
        except OSError as exc:
            self.disconnect()
            if exc.errno == errno.EPIPE:
                logger.info("the reader of the named pipe went away", output=self.name, path=self.config.path)
                raise RetryableError(f"the reader of named pipe {self.config.path} went away") from exc
            raise RetryableError(f"cannot write named pipe {self.config.path}: {exc.strerror}") from exc
        self.fresh = False
        return refused or None
