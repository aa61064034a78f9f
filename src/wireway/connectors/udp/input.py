"""The `udp` input: one datagram, one message."""

from __future__ import annotations

import asyncio

from wireway.connectors.base import Input, InputContext
from wireway.connectors.datagrams import DatagramReceiver
from wireway.connectors.udp.config import UdpInputConfig, check_address
from wireway.connectors.udp_sockets import listening
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("udp")


@register_input("udp", config=UdpInputConfig)
class UdpInput(Input):
    """Receive datagrams; those that arrive while a batch is stored make the next batch."""

    config: UdpInputConfig
    formats = None

    async def start(self, ctx: InputContext) -> None:
        cfg = self.config
        self.ctx = ctx
        self.receiver = DatagramReceiver(
            ctx,
            self.name,
            self.iface.new_codec(),
            cfg.max_datagram_bytes,
            cfg.max_pending,
            "max_datagram_bytes",
        )
        host, port, group = check_address(cfg.address)
        sock = listening(host, port, group, cfg.interface, cfg.reuse_port, cfg.receive_buffer)
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self.receiver, sock=sock)
        self.receiver.start()
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        self.transport.close()
        await self.receiver.stop()

    def health(self) -> dict[str, str]:
        receiver = getattr(self, "receiver", None)
        return {f"{self.name}_dropped": str(receiver.dropped)} if receiver and receiver.dropped else {}
