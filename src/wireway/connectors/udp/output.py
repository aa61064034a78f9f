"""The `udp` output: one message, one datagram."""

from __future__ import annotations

import asyncio
import errno

from wireway.connectors.base import Output
from wireway.connectors.udp.config import UdpOutputConfig, check_address
from wireway.connectors.udp_sockets import sending
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.registry import register_output


class Sender(asyncio.DatagramProtocol):
    """Keeps the send errors and whether the transport's buffer is over its limit."""

    def __init__(self) -> None:
        self.error: OSError | None = None
        self.room = asyncio.Event()
        self.room.set()

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.error = exc

    def pause_writing(self) -> None:
        self.room.clear()

    def resume_writing(self) -> None:
        self.room.set()


@register_output("udp", config=UdpOutputConfig)
class UdpOutput(Output):
    """Send datagrams; a batch is confirmed once the kernel has taken them."""

    config: UdpOutputConfig
    formats = None

    async def open(self) -> None:
        cfg = self.config
        host, port, group = check_address(cfg.address)
        self.target = (host, port)
        self.codec = self.iface.new_codec()
        sock = sending(host, group, cfg.broadcast, cfg.interface, cfg.ttl, cfg.loopback)
        loop = asyncio.get_running_loop()
        transport, self.protocol = await loop.create_datagram_endpoint(Sender, sock=sock)
        self.transport: asyncio.DatagramTransport = transport

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        cfg = self.config
        refused: dict[int, str] = {}
        for i, msg in enumerate(batch):
            try:
                data = self.codec.encode(msg, cfg.payload_only)
            except ValueError as exc:
                refused[i] = str(exc)
                continue
            if len(data) > cfg.max_datagram_bytes:
                refused[i] = f"{len(data)} bytes: over max_datagram_bytes ({cfg.max_datagram_bytes})"
                continue
            if not self.protocol.room.is_set():
                await self.protocol.room.wait()
            self.transport.sendto(data, self.target)
            error, self.protocol.error = self.protocol.error, None
            if error is not None:
                if error.errno == errno.EMSGSIZE:
                    refused[i] = f"{len(data)} bytes: too long for the network ({error.strerror})"
                    continue
                raise RetryableError(f"udp {cfg.address}: {error.strerror or error}") from error
        buffered = getattr(self.transport, "get_write_buffer_size", lambda: 0)
        for _ in range(1000):  # what the kernel could not take at once, bounded
            if buffered() == 0:
                break
            await asyncio.sleep(0.001)
        return refused or None

    async def close(self) -> None:
        if hasattr(self, "transport"):
            self.transport.close()
