"""The writing end of a framed stream (tcp, unix stream sockets): one connection kept
up with backoff, batches written as frames (see framing.py), and, with `await_ack`,
the reading end's `ok N` answers awaited."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

from wireway.connectors.framing import MAX_LENGTH, StreamClientOptions, frame
from wireway.envelope import Message
from wireway.errors import NotConnected, RetryableError
from wireway.formats.codec import Codec
from wireway.observability import logging as log
from wireway.observability.metrics import connection_closed, connection_opened

logger = log.get("framing")


def parse_ack(line: bytes) -> tuple[int | None, str | None]:
    """`ok N [of M]` -> (frames it covers, None); `error why` -> (None, why)."""
    words = line.decode("utf-8", "replace").split()
    if len(words) >= 2 and words[0] == "ok" and words[1].isdigit():
        if len(words) == 4 and words[2] == "of" and words[3].isdigit():
            return int(words[3]), None
        return int(words[1]), None
    return None, line.decode("utf-8", "replace").strip().removeprefix("error ") or "empty answer"


class Link:
    """One connection of a `StreamSender`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, codec: Codec) -> None:
        self.reader = reader
        self.writer = writer
        self.codec = codec
        self.sent = 0  # frames written
        self.acked = 0  # frames the peer answered for
        self.error: str | None = None
        self.lost = False
        self.started = False  # the format's header has been written
        self.changed = asyncio.Event()

    def close(self) -> None:
        self.lost = True
        self.changed.set()
        self.writer.close()


Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class StreamSender:
    """The writing end: one connection kept up by its own task, reconnecting with a
    doubling, jittered delay; `send` writes a batch and returns once it is drained to
    the socket (or, with `await_ack`, once the peer answered for all of it)."""

    def __init__(
        self,
        options: StreamClientOptions,
        connect: Connect,
        peer: str,
        name: str,
        kind: str,
        new_codec: Callable[[], Codec],
    ) -> None:
        self.options = options
        self.connect = connect
        self.peer = peer
        self.name = name
        self.kind = kind
        self.new_codec = new_codec
        self.link: Link | None = None
        self.lock = asyncio.Lock()
        self.first_attempt = asyncio.Event()
        self.up = asyncio.Event()  # set while a connection is open
        self.task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.link is not None and not self.link.lost

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"wireway[{self.name}].connect")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.link is not None:
            self.link.close()

    def delay(self, attempt: int) -> float:
        opts = self.options
        base = min(opts.reconnect_max, opts.reconnect_initial * 2 ** min(attempt - 1, 30))
        return float(base * (1 - opts.reconnect_jitter * random.random()))

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                reader, writer = await asyncio.wait_for(self.connect(), self.options.connect_timeout)
            except (OSError, TimeoutError) as exc:
                attempt += 1
                if attempt == 1:
                    logger.warning("cannot connect", output=self.name, peer=self.peer, error=str(exc))
                self.first_attempt.set()
                await asyncio.sleep(self.delay(attempt))
                continue
            if attempt:
                logger.info("connected", output=self.name, peer=self.peer)
            attempt = 0
            link = Link(reader, writer, self.new_codec())
            self.link = link
            self.up.set()
            self.first_attempt.set()
            connection_opened(self.kind)
            try:
                await self.listen(link)
            finally:
                self.up.clear()
                link.close()
                connection_closed(self.kind)
            logger.warning("connection lost", output=self.name, peer=self.peer)
            attempt = 1
            await asyncio.sleep(self.delay(attempt))

    async def listen(self, link: Link) -> None:
        """Read the peer's answers until the connection ends."""
        with contextlib.suppress(ConnectionError, OSError, ValueError, asyncio.IncompleteReadError):
            while not link.lost:
                line = await link.reader.readline()
                if not line:
                    return
                frames, error = parse_ack(line)
                if frames is not None:
                    link.acked += frames
                else:
                    link.error = error
                link.changed.set()

    async def send(self, batch: list[Message]) -> dict[int, str] | None:
        if not self.connected:
            # a peer restarting is back within a moment: wait for it rather than spend
            # one of the batch's delivery attempts
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.connect_timeout):
                    await self.up.wait()
        async with self.lock:  # batches in flight at once must not interleave their bytes
            link = self.link
            if link is None or link.lost:
                raise NotConnected(f"not connected to {self.peer}")
            refused, parts = self.encode(link, batch)
            if not parts:
                return refused or None
            try:
                link.writer.write(b"".join(parts))
                await link.writer.drain()
            except (ConnectionError, OSError) as exc:
                link.close()
                raise RetryableError(f"{self.peer}: {exc}") from exc
            link.sent += len(parts)
            if self.options.await_ack:
                await self.wait_ack(link)
            return refused or None

    def encode(self, link: Link, batch: list[Message]) -> tuple[dict[int, str], list[bytes]]:
        lines = self.options.framing == "lines"
        refused: dict[int, str] = {}
        parts: list[bytes] = []
        for i, msg in enumerate(batch):
            try:
                record = link.codec.encode(msg, self.options.payload_only)
            except ValueError as exc:
                refused[i] = str(exc)
                continue
            if lines and b"\n" in record:
                refused[i] = "the record holds a newline: use `framing: length`"
                continue
            if len(record) > MAX_LENGTH:
                refused[i] = "the record is over 4 GiB"
                continue
            if lines and not link.started:
                link.started = True
                header = link.codec.header(msg)
                if header:
                    parts.append(header)
            parts.append(frame(record, self.options.framing))
        return refused, parts

    async def wait_ack(self, link: Link) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.ack_timeout
        while link.acked < link.sent:
            if link.error is not None:
                why = link.error
                link.close()
                raise RetryableError(f"{self.peer} answered: {why}")
            if link.lost:
                raise RetryableError(f"the connection to {self.peer} closed before its answer")
            link.changed.clear()
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0)):
                    await link.changed.wait()
            except TimeoutError:
                link.close()  # a late answer would be taken for the next batch's
                raise RetryableError(
                    f"{self.peer} answered for {link.acked} of {link.sent} records "
                    f"in {self.options.ack_timeout}s"
                ) from None
