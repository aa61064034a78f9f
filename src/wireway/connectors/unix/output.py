"""The `unix` output: a unix-domain socket, stream or datagram."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket

from wireway.connectors.base import Output
from wireway.connectors.stream_sender import StreamSender
from wireway.connectors.unix.config import UnixOutputConfig
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.registry import register_output


@register_output("unix", config=UnixOutputConfig)
class UnixOutput(Output):
    """Stream: one connection kept open and reopened with backoff; datagram: one
    datagram per message to the socket file."""

    config: UnixOutputConfig
    formats = None
    sock: socket.socket | None = None
    sender: StreamSender | None = None

    async def open(self) -> None:
        cfg = self.config
        if cfg.socket == "datagram":
            self.codec = self.iface.new_codec()
            return

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_unix_connection(cfg.path)

        self.sender = StreamSender(cfg, connect, cfg.path, self.name, "unix", self.iface.new_codec)
        self.sender.start()
        with contextlib.suppress(TimeoutError):  # a peer that is not there never fails the start
            async with asyncio.timeout(cfg.connect_timeout):
                await self.sender.first_attempt.wait()

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        if self.sender is not None:
            return await self.sender.send(batch)
        return await self.send_datagrams(batch)

    def datagram_socket(self) -> socket.socket:
        if self.sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.connect(self.config.path)
            except OSError as exc:
                sock.close()
                raise RetryableError(f"{self.config.path}: {exc.strerror}") from exc
            self.sock = sock
        return self.sock

    async def send_datagrams(self, batch: list[Message]) -> dict[int, str] | None:
        loop = asyncio.get_running_loop()
        sock = self.datagram_socket()
        refused: dict[int, str] = {}
        for i, msg in enumerate(batch):
            try:
                data = self.codec.encode(msg, self.config.payload_only)
            except ValueError as exc:
                refused[i] = str(exc)
                continue
            try:
                await loop.sock_sendall(sock, data)
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:
                    refused[i] = f"{len(data)} bytes: too long for a datagram"
                    continue
                self.sock = None
                sock.close()
                raise RetryableError(f"{self.config.path}: {exc.strerror}") from exc
        return refused or None

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.stop()
        if self.sock is not None:
            self.sock.close()

    def health(self) -> dict[str, str]:
        if self.sender is None:
            return {}
        return {self.name: "up" if self.sender.connected else "down"}
