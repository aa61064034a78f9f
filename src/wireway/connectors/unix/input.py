"""The `unix` input: a unix-domain socket, stream or datagram."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from wireway.connectors.base import Input, InputContext
from wireway.connectors.framing import StreamReceiver, close_clients, reads_lines, snippet
from wireway.connectors.unix import socketfile
from wireway.connectors.unix.config import UnixInputConfig
from wireway.errors import WirewayError
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("unix")
MAX_PENDING = 10_000  # datagrams held while a batch is stored


class Receiver(asyncio.DatagramProtocol):
    """Holds datagrams until the input's task ingests them."""

    def __init__(self, owner: UnixInput) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.received(data)


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
        self.task: asyncio.Task[None] | None = None
        try:
            if cfg.socket == "stream":
                self.receiver = StreamReceiver(ctx, self.name, cfg, self.iface.new_codec)
                self.clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
                self.server = await asyncio.start_unix_server(self.client, sock=sock)
            else:
                self.codec = self.iface.new_codec()
                self.pending: list[bytes] = []
                self.dropped = 0
                self.wake = asyncio.Event()
                self.transport, _ = await loop.create_datagram_endpoint(lambda: Receiver(self), sock=sock)
                self.task = asyncio.create_task(self.run(), name=f"wireway[{self.name}].ingest")
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
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
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

    def received(self, data: bytes) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "datagrams dropped while a batch is stored", input=self.name, dropped=self.dropped
                )
            return
        self.pending.append(data)
        self.wake.set()

    async def run(self) -> None:
        limit = self.config.max_frame_bytes
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            values: list[Any] = []
            errors: list[tuple[Any, str]] = []
            for data in batch:
                if len(data) > limit:
                    errors.append((snippet(data), f"datagram over max_frame_bytes ({limit})"))
                    continue
                for rec in self.codec.decode(data):
                    if rec.error is not None:
                        errors.append((snippet(data), rec.error))
                    else:
                        values.append(rec.value)
            if not values and not errors:
                continue
            try:
                await self.ctx.ingest(values, source=self.name, errors=errors)
            except Exception as exc:  # noqa: BLE001  (a datagram cannot be refused: log and go on)
                logger.error("could not store datagrams", input=self.name, count=len(batch), error=str(exc))
