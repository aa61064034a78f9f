"""The `tcp` input: a TCP (or TLS) server reading framed records."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from wireway.connectors.base import Input, InputContext
from wireway.connectors.framing import StreamReceiver, close_clients, reads_lines
from wireway.connectors.hostport import parse_hostport
from wireway.connectors.tcp.config import TcpInputConfig
from wireway.connectors.tls import server_context
from wireway.errors import WirewayError
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("tcp")


@register_input("tcp", config=TcpInputConfig)
class TcpInput(Input):
    """Read records from every client; a whole read's records are ingested as one batch."""

    config: TcpInputConfig
    formats = None
    server: asyncio.Server | None = None  # none until started (a stop may come first)

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        cfg = self.config
        if cfg.framing == "lines" and not reads_lines(self.iface.new_codec()):
            raise WirewayError(
                f"{self.name}: format `{self.iface.format}` is not line by line: use framing: length"
            )
        self.receiver = StreamReceiver(ctx, self.name, cfg, self.iface.new_codec)
        self.clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        tls: ssl.SSLContext | None = None
        if cfg.tls is not None:
            tls = server_context(cfg.tls, self.pattern.base_dir)
        host, port = parse_hostport(cfg.address)
        try:
            self.server = await asyncio.start_server(
                self.client,
                host,
                port,
                reuse_address=True,
                ssl=tls,
                ssl_handshake_timeout=10.0 if tls else None,
            )
        except OSError as exc:
            raise WirewayError(f"{self.name}: cannot listen on {cfg.address}: {exc.strerror}") from exc
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        server = self.server
        if server is None:
            return
        server.close()
        await close_clients(self.clients)
        with contextlib.suppress(Exception):
            await server.wait_closed()

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.clients[task] = writer
        self.ctx.connection_opened("tcp")
        try:
            await self.receiver.serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            logger.debug("client gone", input=self.name, error=str(exc))
        except WirewayError as exc:  # e.g. shutting down while the batch waited for room
            logger.warning("connection closed", input=self.name, error=str(exc))
        finally:
            self.clients.pop(task, None)
            self.ctx.connection_closed("tcp")
            writer.close()
