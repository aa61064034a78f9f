"""The `tcp` output: a TCP (or TLS) client writing framed records."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from wireway.connectors.base import Output
from wireway.connectors.hostport import parse_hostport
from wireway.connectors.stream_sender import StreamSender
from wireway.connectors.tcp.config import TcpOutputConfig
from wireway.connectors.tls import client_context
from wireway.envelope import Message
from wireway.registry import register_output


@register_output("tcp", config=TcpOutputConfig)
class TcpOutput(Output):
    """Write each batch to one connection, kept open and reopened with backoff."""

    config: TcpOutputConfig
    formats = None

    async def open(self) -> None:
        cfg = self.config
        host, port = parse_hostport(cfg.address)
        tls: ssl.SSLContext | None = None
        if cfg.tls is not None:
            tls = client_context(cfg.tls, self.pattern.base_dir)
        server_name = (cfg.tls.server_name or host) if cfg.tls is not None else None

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection(host, port, ssl=tls, server_hostname=server_name)

        self.sender = StreamSender(cfg, connect, cfg.address, self.name, "tcp", self.iface.new_codec)
        self.sender.start()
        with contextlib.suppress(TimeoutError):  # a peer that is down never fails the start
            async with asyncio.timeout(cfg.connect_timeout):
                await self.sender.first_attempt.wait()

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        return await self.sender.send(batch)

    async def close(self) -> None:
        if hasattr(self, "sender"):
            await self.sender.stop()

    def health(self) -> dict[str, str]:
        sender = getattr(self, "sender", None)
        return {self.name: "up" if sender is not None and sender.connected else "down"}
