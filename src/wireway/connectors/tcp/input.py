"""The `tcp` input: newline-delimited JSON over a TCP server."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec

from wireway.connectors.base import Input, InputContext
from wireway.connectors.hostport import parse_hostport
from wireway.connectors.tcp.config import TcpInputConfig
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("tcp")
_decode = msgspec.json.Decoder().decode


@register_input("tcp", config=TcpInputConfig)
class TcpInput(Input):
    """Read JSON lines from every client; a whole read's lines are ingested as one batch."""

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.clients: set[asyncio.Task[None]] = set()
        host, port = parse_hostport(self.config.address)
        self.server = await asyncio.start_server(
            self.client, host, port, limit=self.config.max_line_bytes, reuse_address=True
        )
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        self.server.close()
        for task in list(self.clients):
            task.cancel()
        await asyncio.gather(*self.clients, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.server.wait_closed()

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.clients.add(task)
        self.ctx.connection_opened("tcp")
        try:
            await self.read_loop(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.clients.discard(task)
            self.ctx.connection_closed("tcp")
            writer.close()

    async def read_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rest = b""
        while True:
            chunk = await reader.read(256 * 1024)
            if not chunk:
                break
            data = rest + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                if len(rest) > self.config.max_line_bytes:
                    rest = b""
                    logger.warning("line too long, dropped", input=self.name)
                continue
            rest = data[cut + 1 :]
            await self.ingest_lines(data[:cut].split(b"\n"), writer)
        if rest.strip():
            await self.ingest_lines([rest], writer)

    async def ingest_lines(self, lines: list[bytes], writer: asyncio.StreamWriter) -> None:
        values: list[object] = []
        errors: list[tuple[object, str]] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                values.append(_decode(line))
            except msgspec.DecodeError as exc:
                errors.append((line.decode("utf-8", "replace"), f"invalid JSON: {exc}"))
        result = await self.ctx.ingest(values, source=self.name, errors=errors)
        if self.config.ack:
            writer.write(f"ok {len(result.accepted)}\n".encode())
            await writer.drain()
