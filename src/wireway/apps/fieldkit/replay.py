"""`fieldkit_replay`: postcollection mode, one chosen WiGLE file read from its start."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from wireway.apps.fieldkit.app import FieldKit
from wireway.connectors.base import Input, InputContext
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("fieldkit")


class ReplayConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Replays the file an operator chooses with `POST /start_broadcast` in
    `postcollection` mode (WigleToTAK's analysis of a finished survey): the whole
    file from its first row, `chunk` rows per batch, each batch in the outboxes before
    the next is read. `POST /stop_broadcast` ends it; after a restart a replay that
    was under way starts again from the beginning. Rows are decoded with the entry's
    `format:` (`wiglecsv`); a malformed row goes to the DLQ with its line.
    """

    chunk: Annotated[int, Meta(ge=1, le=100_000, description="rows per batch")] = 500


@register_input("fieldkit_replay", config=ReplayConfig)
class ReplayInput(Input):
    """Reads a chosen file once, when the operators' API asks."""

    config: ReplayConfig
    service_class = FieldKit
    formats: ClassVar[tuple[str, ...] | None] = None
    default_format: ClassVar[str] = "wiglecsv"

    def use_service(self, service: FieldKit) -> None:
        service.replay = self.play
        service.stop_replay = self.halt
        self.kit = service
        self.task: asyncio.Task[None] | None = None

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.state = "running"
        await self.kit.resume_replay()

    async def play(self, path: Path) -> None:
        """Replay `path` from its start (a replay under way ends first)."""
        await self.halt()
        if self.state != "running":
            return
        self.task = asyncio.create_task(self.read(path), name=f"wireway[{self.name}].replay")

    async def halt(self) -> None:
        task, self.task = getattr(self, "task", None), None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def read(self, path: Path) -> None:
        codec = self.iface.new_codec()
        values: list[object] = []
        errors: list[tuple[object, str]] = []
        rows = 0
        try:
            with path.open("rb") as f:
                for number, line in enumerate(f, 1):
                    record = codec.decode_line(line.rstrip(b"\r\n"), f"{path}:{number}")
                    if record is None:
                        continue
                    if record.error is None:
                        values.append(record.value)
                    else:
                        errors.append((record.value, record.error))
                    if len(values) + len(errors) >= self.config.chunk:
                        rows += len(values)
                        await self.ctx.ingest(values, source=self.name, errors=errors)
                        values, errors = [], []
            if values or errors:
                rows += len(values)
                await self.ctx.ingest(values, source=self.name, errors=errors)
        except OSError as exc:
            logger.error("replay failed", input=self.name, file=str(path), error=str(exc))
            return
        logger.info("replay done", input=self.name, file=str(path), rows=rows)

    async def stop(self) -> None:
        await self.halt()
        self.state = "stopped"

    def health(self) -> dict[str, str]:
        return {f"fieldkit_replay:{self.name}": "up" if self.state == "running" else "down"}
