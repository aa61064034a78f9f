"""The `pipe` input: lines from a named pipe, whose writers may come and go."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from wireway.connectors.base import Input, InputContext
from wireway.connectors.lines import LineReader, line_codec, pipe_reader
from wireway.connectors.pipe.config import PipeInputConfig
from wireway.connectors.pipe.fifo import ensure_fifo, open_reading
from wireway.errors import WirewayError
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("pipe")
REOPEN_FIRST = 0.1  # seconds before the second try to open the FIFO again; doubled up to REOPEN_MAX
REOPEN_MAX = 5.0


@register_input("pipe", config=PipeInputConfig)
class PipeInput(Input):
    """Read a FIFO line by line; after its last writer closes it, open it again."""

    config: PipeInputConfig
    formats: ClassVar[tuple[str, ...] | None] = None

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        line_codec(self.iface.new_codec)  # a format that cannot read lines fails the start
        ensure_fifo(self.config)
        # open before returning: a writer may come as soon as the pattern has started
        fd = open_reading(self.config.path)
        self.task = asyncio.create_task(self.read_forever(fd), name=f"wireway[{self.name}].pipe")
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        if hasattr(self, "task"):
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def health(self) -> dict[str, str]:
        return {f"pipe:{self.name}": "up" if self.state == "running" else "down"}

    async def read_forever(self, fd: int) -> None:
        while True:
            reader, transport = await pipe_reader(fd)
            try:
                try:
                    await self.read_stream(reader)
                except Exception as exc:  # noqa: BLE001  (the next writer is read all the same)
                    logger.error("reading the named pipe failed", input=self.name, error=str(exc))
                # every writer closed it. The next read end is opened before this one is
                # closed, so the pipe (and what a writer put in it meanwhile) stays; a
                # fresh read end reports no end until a writer has come and gone again,
                # so waiting for the next writer costs nothing
                fd = await self.reopen()
            finally:
                transport.close()

    async def reopen(self) -> int:
        """The FIFO's next read end; made again if someone removed it, retried until it opens."""
        pause = REOPEN_FIRST
        while True:
            try:
                ensure_fifo(self.config)
                fd = open_reading(self.config.path)
            except WirewayError as exc:
                self.state = "retrying"
                logger.error("cannot open the named pipe again", input=self.name, error=str(exc))
                await asyncio.sleep(pause)
                pause = min(pause * 2, REOPEN_MAX)
                continue
            self.state = "running"
            return fd

    async def read_stream(self, reader: asyncio.StreamReader) -> None:
        """Ingest one writer's lines (a new codec per stream)."""
        lines = LineReader(
            reader.read,
            line_codec(self.iface.new_codec),
            max_line_bytes=self.config.max_line_bytes,
            where=self.config.path,
        )
        while (batch := await lines.read()) is not None:
            if batch.values or batch.errors:
                await self.ctx.ingest(batch.values, source=self.name, errors=batch.errors)
