"""The `file` input: follow files as they grow, or take each new file whole."""

from __future__ import annotations

import asyncio
import contextlib

from wireway.connectors.base import Input, InputContext
from wireway.connectors.file.config import FileInputConfig
from wireway.connectors.file.tail import Tail
from wireway.connectors.file.whole import Whole
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("file")
RETRY_SECONDS = 1.0


@register_input("file", config=FileInputConfig)
class FileInput(Input):
    """Read the lines of followed files, or whole files, in any `format:`."""

    keeps_position = True
    formats = None

    async def start(self, ctx: InputContext) -> None:
        reader_cls = Tail if self.config.mode == "tail" else Whole
        self.reader: Tail | Whole = reader_cls(self.config, self.name, ctx, self.iface.new_codec)
        self.task = asyncio.create_task(self.run(), name=f"wireway[{self.name}].read")
        self.state = "running"

    async def run(self) -> None:
        while True:
            try:
                await self.reader.run()
            except OSError as exc:  # a folder that went away, no permission...
                logger.error("file input fails, retrying", input=self.name, error=str(exc))
                await self.reader.close()
                self.reader = type(self.reader)(self.config, self.name, self.reader.ctx, self.iface.new_codec)
                self.state = "retrying"
                await asyncio.sleep(RETRY_SECONDS)
                self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.reader.close()

    def health(self) -> dict[str, str]:
        # "retrying": reading failed (a folder gone, no permission) and is tried again
        return {self.name: "down" if self.state == "retrying" else "up"}
