"""The `udp` input: one datagram, one message."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from wireway.connectors.base import Input, InputContext
from wireway.connectors.udp.config import UdpInputConfig, check_address
from wireway.connectors.udp.sockets import listening
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("udp")
Datagram = tuple[bytes, Any]


class Receiver(asyncio.DatagramProtocol):
    """Holds datagrams until the input's task ingests them."""

    def __init__(self, owner: UdpInput) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.received(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("receive error", input=self.owner.name, error=str(exc))


@register_input("udp", config=UdpInputConfig)
class UdpInput(Input):
    """Receive datagrams; those that arrive while a batch is stored make the next batch."""

    config: UdpInputConfig
    formats = None

    async def start(self, ctx: InputContext) -> None:
        cfg = self.config
        self.ctx = ctx
        self.codec = self.iface.new_codec()
        self.pending: list[Datagram] = []
        self.dropped = 0
        self.wake = asyncio.Event()
        host, port, group = check_address(cfg.address)
        sock = listening(host, port, group, cfg.interface, cfg.reuse_port, cfg.receive_buffer)
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: Receiver(self), sock=sock)
        self.task = asyncio.create_task(self.run(), name=f"wireway[{self.name}].ingest")
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        self.transport.close()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def received(self, data: bytes, addr: Any) -> None:
        if len(self.pending) >= self.config.max_pending:
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

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            if batch:
                await self.ingest(batch)

    async def ingest(self, batch: list[Datagram]) -> None:
        limit = self.config.max_datagram_bytes
        values: list[Any] = []
        errors: list[tuple[Any, str]] = []
        for data, addr in batch:
            where = f"datagram from {addr[0]}:{addr[1]}" if isinstance(addr, tuple) else ""
            if len(data) > limit:
                errors.append((f"<{len(data)} bytes>", f"{where}: over max_datagram_bytes ({limit})"))
                continue
            for rec in self.codec.decode(data):
                if rec.error is not None:
                    errors.append((data[:1024].decode("utf-8", "replace"), rec.error))
                else:
                    values.append(rec.value)
        try:
            await self.ctx.ingest(values, source=self.name, errors=errors)
        except Exception as exc:  # noqa: BLE001  (a datagram cannot be refused: log and go on)
            logger.error("could not store datagrams", input=self.name, count=len(batch), error=str(exc))

    def health(self) -> dict[str, str]:
        return {f"{self.name}_dropped": str(self.dropped)} if getattr(self, "dropped", 0) else {}
