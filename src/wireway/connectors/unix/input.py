"""The `unix` input: a unix-domain socket, stream or datagram."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wireway.connectors.base import Input, InputContext
from wireway.connectors.datagrams import DatagramReceiver
from wireway.connectors.framing import StreamReceiver, close_clients, reads_lines
from wireway.connectors.unix import socketfile
from wireway.connectors.unix.config import UnixInputConfig
from wireway.errors import WirewayError
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("unix")
MAX_PENDING = 10_000  # datagrams held while a batch is stored


@register_input("unix", config=UnixInputConfig)
class UnixInput(Input):
    """Stream: each client's records, a read at a time; datagram: the datagrams that
    arrived while a batch was stored make the next batch."""

    config: UnixInputConfig
    formats = None

    async def start(self, ctx: InputContext) -> None:
        cfg = self.config
        self.ctx = ctx
        self.path = Path(cfg.path)
        if cfg.socket == "stream" and cfg.framing == "lines" and not reads_lines(self.iface.new_codec()):
            why = f"format `{self.iface.format}` is not line by line: use framing: length"
            raise WirewayError(f"{self.name}: {why}")
        sock, self.inode = socketfile.bind(cfg)
        loop = asyncio.get_running_loop()
        self.server: asyncio.Server | None = None
        self.transport: asyncio.BaseTransport | None = None
        self.datagrams: DatagramReceiver | None = None
        try:
            if cfg.socket == "stream":
                self.receiver = StreamReceiver(ctx, self.name, cfg, self.iface.new_codec)
                self.clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
                self.server = await asyncio.start_unix_server(self.client, sock=sock)
            else:
                codec, limit = self.iface.new_codec(), cfg.max_frame_bytes
                datagrams = DatagramReceiver(ctx, self.name, codec, limit, MAX_PENDING, "max_frame_bytes")
                self.transport, _ = await loop.create_datagram_endpoint(lambda: datagrams, sock=sock)
                datagrams.start()
                self.datagrams = datagrams
        except OSError as exc:
            sock.close()
            socketfile.remove(self.path, self.inode)
            raise WirewayError(f"{self.name}: cannot listen on {cfg.path}: {exc.strerror}") from exc
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        if self.server is not None:
            self.server.close()
            await close_clients(self.clients)
        if self.transport is not None:
            self.transport.close()
        if self.datagrams is not None:
            await self.datagrams.stop()
        socketfile.remove(self.path, self.inode)

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.clients[task] = writer
        self.ctx.connection_opened("unix")
        try:
            await self.receiver.serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            logger.debug("client gone", input=self.name, error=str(exc))
        except WirewayError as exc:
            logger.warning("connection closed", input=self.name, error=str(exc))
        finally:
            self.clients.pop(task, None)
            self.ctx.connection_closed("unix")
            writer.close()
