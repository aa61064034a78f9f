"""The `tak` output: CoT events as datagrams (a multicast group, unicast, broadcast)
or written one after the other on a TCP or TLS connection to a TAK server."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from wireway.connectors.base import Output
from wireway.connectors.framing import CHUNK, StreamClientOptions
from wireway.connectors.stream_sender import Link, StreamSender
from wireway.connectors.tak.config import TakOutputConfig, parse_address
from wireway.connectors.tak.credentials import client_context
from wireway.connectors.udp_sockets import DatagramSender, sending
from wireway.envelope import Message
from wireway.errors import WirewayError
from wireway.registry import register_output


class EventSender(StreamSender):
    """A `StreamSender` writing events back to back, without framing: a TAK server
    finds each XML event's end by its `</event>`, and a protocol v1 stream frame
    carries its own length."""

    def encode(self, link: Link, batch: list[Message]) -> tuple[dict[int, str], list[bytes]]:
        refused: dict[int, str] = {}
        events: list[bytes] = []
        for i, msg in enumerate(batch):
            try:
                events.append(link.codec.encode(msg))
            except ValueError as exc:
                refused[i] = str(exc)
        return refused, events

    async def listen(self, link: Link) -> None:
        """Read what the server sends (other clients' events, pings) and drop it, until
        the connection ends; reading also notices at once that the server went away."""
        with contextlib.suppress(ConnectionError, OSError):
            while not link.lost:
                if not await link.reader.read(CHUNK):
                    return


@register_output("tak", config=TakOutputConfig)
class TakOutput(Output):
    """Send CoT events over UDP, TCP or TLS; confirmed once written (TAK has no ack)."""

    config: TakOutputConfig
    formats = ("cot",)
    default_format = "cot"

    async def open(self) -> None:
        self.address = parse_address(self.config.address)
        protocol = getattr(self.iface.new_codec().options, "protocol", "xml")
        udp = self.address.scheme == "udp"
        if protocol == ("stream" if udp else "mesh"):
            fits = "mesh" if udp else "stream"
            raise WirewayError(
                f"{self.name}: TAK protocol `{protocol}` does not go over {self.address.scheme}:// "
                f"(use `protocol: {fits}` or xml)"
            )
        if udp:
            await self.open_udp()
        else:
            await self.open_stream()

    async def open_udp(self) -> None:
        cfg, address = self.config, self.address
        self.target = (address.host, address.port)
        self.codec = self.iface.new_codec()
        sock = sending(address.host, address.group, cfg.broadcast, cfg.interface, cfg.ttl, cfg.loopback)
        self.datagrams = await DatagramSender.open(sock)

    async def open_stream(self) -> None:
        cfg, address = self.config, self.address
        tls: ssl.SSLContext | None = None
        server_name: str | None = None
        if address.scheme == "tls":
            tls = client_context(cfg.tls, self.pattern.base_dir) if cfg.tls else ssl.create_default_context()
            server_name = (cfg.tls.server_name if cfg.tls else None) or address.host

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection(
                address.host, address.port, ssl=tls, server_hostname=server_name
            )

        options = StreamClientOptions(
            connect_timeout=cfg.connect_timeout,
            reconnect_initial=cfg.reconnect_initial,
            reconnect_max=cfg.reconnect_max,
            reconnect_jitter=cfg.reconnect_jitter,
        )
        self.sender = EventSender(
            options, connect, cfg.address, self.name, address.scheme, self.iface.new_codec
        )
        self.sender.start()
        with contextlib.suppress(TimeoutError):  # a server that is down never fails the start
            async with asyncio.timeout(cfg.connect_timeout):
                await self.sender.first_attempt.wait()

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        if self.address.scheme != "udp":
            return await self.sender.send(batch)
        return await self.send_datagrams(batch)

    async def send_datagrams(self, batch: list[Message]) -> dict[int, str] | None:
        cfg = self.config
        return await self.datagrams.send(
            batch, self.codec.encode, self.target, cfg.max_datagram_bytes, f"tak {cfg.address}"
        )

    async def close(self) -> None:
        if hasattr(self, "datagrams"):
            self.datagrams.close()
        if hasattr(self, "sender"):
            await self.sender.stop()

    def health(self) -> dict[str, str]:
        sender = getattr(self, "sender", None)
        if sender is None:
            return {}
        return {self.name: "up" if sender.connected else "down"}
