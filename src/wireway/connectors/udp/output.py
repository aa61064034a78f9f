"""The `udp` output: one message, one datagram."""

from __future__ import annotations

from wireway.connectors.base import Output
from wireway.connectors.udp.config import UdpOutputConfig, check_address
from wireway.connectors.udp_sockets import DatagramSender, sending
from wireway.envelope import Message
from wireway.registry import register_output


@register_output("udp", config=UdpOutputConfig)
class UdpOutput(Output):
    """Send datagrams; a batch is confirmed once the kernel has taken them."""

    config: UdpOutputConfig
    formats = None
    sender: DatagramSender | None = None

    async def open(self) -> None:
        cfg = self.config
        host, port, group = check_address(cfg.address)
        self.target = (host, port)
        self.codec = self.iface.new_codec()
        sock = sending(host, group, cfg.broadcast, cfg.interface, cfg.ttl, cfg.loopback)
        self.sender = await DatagramSender.open(sock)

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        cfg = self.config
        assert self.sender is not None
        return await self.sender.send(
            batch,
            lambda msg: self.codec.encode(msg, cfg.payload_only),
            self.target,
            cfg.max_datagram_bytes,
            f"udp {cfg.address}",
        )

    async def close(self) -> None:
        if self.sender is not None:
            self.sender.close()
