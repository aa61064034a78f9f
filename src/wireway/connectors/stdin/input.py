"""The `stdin` input: wireway's standard input, line by line, until it ends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from typing import ClassVar

from wireway.connectors.base import Input, InputContext
from wireway.connectors.lines import LineReader, Read, line_codec, pipe_reader
from wireway.connectors.stdin.config import StdinInputConfig
from wireway.errors import WirewayError
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("stdin")


@register_input("stdin", config=StdinInputConfig)
class StdinInput(Input):
    """Ingest standard input's lines; at its end, say the input has finished."""

    config: StdinInputConfig
    formats: ClassVar[tuple[str, ...] | None] = None

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.codec = line_codec(self.iface.new_codec)
        try:
            # a descriptor of its own, so closing it leaves the process's stdin alone
            self.fd = os.dup(self.config.fd)
        except OSError as exc:
            raise WirewayError(f"cannot read file descriptor {self.config.fd}: {exc.strerror}") from exc
        self.transport: asyncio.BaseTransport | None = None
        self.was_blocking = os.get_blocking(self.fd)
        read = await self.reader()
        self.lines = LineReader(read, self.codec, max_line_bytes=self.config.max_line_bytes, where="stdin")
        self.task = asyncio.create_task(self.read_all(), name=f"wireway[{self.name}].stdin")
        self.state = "running"

    async def reader(self) -> Read:
        """Reads on the event loop for a pipe or terminal; a file (or /dev/null, which the
        loop cannot watch) is read in a worker thread, where its reads never wait for long."""
        fd = self.fd
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            try:
                reader, self.transport = await pipe_reader(os.dup(fd))
            except (ValueError, OSError):
                pass
            else:
                return reader.read

        async def read_file(n: int) -> bytes:
            return await asyncio.to_thread(os.read, fd, n)

        return read_file

    async def stop(self) -> None:
        if not hasattr(self, "task"):
            return
        if self.state != "finished":
            self.state = "stopped"
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        if self.transport is not None:
            self.transport.close()
        with contextlib.suppress(OSError):
            # the loop made the shared descriptor non-blocking: a shell reading the same
            # terminal after wireway exits expects it as it was
            os.set_blocking(self.fd, self.was_blocking)
        os.close(self.fd)

    def health(self) -> dict[str, str]:
        return {f"stdin:{self.name}": "up" if self.state in ("running", "finished") else "down"}

    async def read_all(self) -> None:
        count = 0
        try:
            while (batch := await self.lines.read()) is not None:
                if batch.values or batch.errors:
                    await self.ctx.ingest(batch.values, source=self.name, errors=batch.errors)
                    count += len(batch.values)
        except Exception as exc:  # noqa: BLE001  (nothing more will be read: say so, and finish)
            self.state = "failed"
            logger.error("reading standard input failed", input=self.name, error=str(exc))
        else:
            self.state = "finished"
            logger.info("standard input ended", input=self.name, messages=count)
        self.ctx.finished()
