"""The `tak` input: CoT events from a multicast group (or any UDP address) or from
TAK clients streaming over TCP or TLS."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from wireway.connectors.base import Input, InputContext
from wireway.connectors.datagrams import DatagramReceiver
from wireway.connectors.framing import CHUNK, close_clients, snippet
from wireway.connectors.tak.config import TakInputConfig, parse_address
from wireway.connectors.tak.credentials import server_context
from wireway.connectors.tak.stream import EventDeframer, Refused
from wireway.connectors.udp_sockets import listening
from wireway.errors import WirewayError
from wireway.formats.codec import Codec
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("tak")


@register_input("tak", config=TakInputConfig)
class TakInput(Input):
    """Listen on a multicast group or for TAK clients; every event is a message."""

    config: TakInputConfig
    formats = ("cot",)
    default_format = "cot"

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.address = parse_address(self.config.address)
        if self.address.scheme == "udp":
            await self.start_udp()
        else:
            await self.start_stream()
        self.state = "running"

    async def start_udp(self) -> None:
        cfg, address = self.config, self.address
        self.receiver = DatagramReceiver(
            self.ctx,
            self.name,
            self.iface.new_codec(),
            min(cfg.max_event_bytes, 65507),
            cfg.max_pending,
            "max_event_bytes",
        )
        sock = listening(
            address.host, address.port, address.group, cfg.interface, cfg.reuse_port, cfg.receive_buffer
        )
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self.receiver, sock=sock)
        self.receiver.start()

    async def start_stream(self) -> None:
        cfg, address = self.config, self.address
        tls: ssl.SSLContext | None = None
        if cfg.tls is not None:
            tls = server_context(cfg.tls, self.pattern.base_dir)
        self.clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        try:
            self.server = await asyncio.start_server(
                self.client,
                address.host,
                address.port,
                reuse_address=True,
                ssl=tls,
                ssl_handshake_timeout=10.0 if tls else None,
            )
        except OSError as exc:
            raise WirewayError(f"{self.name}: cannot listen on {cfg.address}: {exc.strerror}") from exc

    async def stop(self) -> None:
        self.state = "stopped"
        if hasattr(self, "transport"):
            self.transport.close()
            await self.receiver.stop()
        if hasattr(self, "server"):
            self.server.close()
            await close_clients(self.clients)
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.clients[task] = writer
        peer = writer.get_extra_info("peername")
        where = f"connection from {peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "connection"
        kind = self.address.scheme
        self.ctx.connection_opened(kind)
        try:
            await self.read(reader, where)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            logger.debug("client gone", input=self.name, error=str(exc))
        except WirewayError as exc:  # e.g. shutting down while the batch waited for room
            logger.warning("connection closed", input=self.name, error=str(exc))
        finally:
            self.clients.pop(task, None)
            self.ctx.connection_closed(kind)
            writer.close()

    async def read(self, reader: asyncio.StreamReader, where: str) -> None:
        """One client's events until it closes; each read's events are one batch."""
        deframer = EventDeframer(self.config.max_event_bytes)
        codec = self.iface.new_codec()
        while chunk := await reader.read(CHUNK):
            events, refused = deframer.feed(chunk)
            if events or refused:
                await self.ingest(codec, events, refused, where)
        refused = deframer.end()
        if refused:
            await self.ingest(codec, [], refused, where)

    async def ingest(self, codec: Codec, events: list[bytes], refused: list[Refused], where: str) -> None:
        values: list[Any] = []
        errors: list[tuple[Any, str]] = [(raw, f"{where}: {why}") for raw, why in refused]
        for data in events:
            for record in codec.decode(data, where):
                if record.error is not None:
                    errors.append((snippet(data), record.error))
                else:
                    values.append(record.value)
        await self.ctx.ingest(values, source=self.name, errors=errors)

    def health(self) -> dict[str, str]:
        receiver = getattr(self, "receiver", None)
        return {f"{self.name}_dropped": str(receiver.dropped)} if receiver and receiver.dropped else {}
