"""Receiving datagrams (udp, unix datagram sockets): one datagram is one unit of the
entry's format; those that arrive while a batch is being stored make the next batch."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from wireway.connectors.base import InputContext
from wireway.connectors.framing import snippet
from wireway.formats.codec import Codec
from wireway.observability import logging as log

logger = log.get("datagrams")


class DatagramReceiver(asyncio.DatagramProtocol):
    """Holds datagrams (up to `max_pending`; more are dropped, counted and logged: a
    datagram cannot be held back at its sender) until its task ingests them."""

    def __init__(
        self, ctx: InputContext, name: str, codec: Codec, max_bytes: int, max_pending: int, limit: str
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.codec = codec
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self.limit = limit  # the option that sets max_bytes, for the DLQ reason
        self.pending: list[tuple[bytes, Any]] = []
        self.dropped = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"wireway[{self.name}].ingest")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(self.pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "datagrams dropped: the batch being stored holds the rest up",
                    input=self.name,
                    dropped=self.dropped,
                )
            return
        self.pending.append((data, addr))
        self.wake.set()

    def error_received(self, exc: Exception) -> None:
        logger.debug("receive error", input=self.name, error=str(exc))

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            if batch:
                await self.ingest(batch)

    async def ingest(self, batch: list[tuple[bytes, Any]]) -> None:
        values: list[Any] = []
        errors: list[tuple[Any, str]] = []
        for data, addr in batch:
            where = f"datagram from {addr[0]}:{addr[1]}" if isinstance(addr, tuple) else "datagram"
            if len(data) > self.max_bytes:
                errors.append((snippet(data), f"{where}: over {self.limit} ({self.max_bytes})"))
                continue
            for record in self.codec.decode(data, where):
                if record.error is not None:
                    errors.append((snippet(data), record.error))
                else:
                    values.append(record.value)
        try:
            await self.ctx.ingest(values, source=self.name, errors=errors)
        except Exception as exc:  # noqa: BLE001  (a datagram cannot be refused: log and go on)
            logger.error("could not store datagrams", input=self.name, count=len(batch), error=str(exc))
