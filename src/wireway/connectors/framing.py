"""Framed byte streams (tcp, unix stream sockets): records cut by newlines or by a
4-byte big-endian length prefix, and the reading end that ingests them (and answers
`ok N`); the writing end, which reconnects with backoff and may wait for that answer,
is stream_sender.py.

The ack protocol: with `ack: true` the reading end answers every batch of frames it
has read with one line, `ok N` once N messages are stored (in their outboxes), or
`ok N of M` when the M frames read gave another number of messages (some went to
the dead-letter queue, were filtered out or split), or `error <why>`. A writer with
`await_ack: true` adds up the M (N where there is no `of`) until it covers what it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from wireway.connectors.base import InputContext
from wireway.formats.codec import Codec
from wireway.observability import logging as log

logger = log.get("framing")
Framing = Literal["lines", "length"]
CHUNK = 256 * 1024
MAX_LENGTH = 0xFFFFFFFF
FRAMING = Meta(
    description="`lines`: a record per line; `length`: each after its length (4 bytes, big-endian)"
)


class StreamServerOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Options of the reading end of a framed stream."""

    framing: Annotated[Framing, FRAMING] = "lines"
    ack: Annotated[
        bool, Meta(description="answer each batch read with `ok N` once its messages are stored")
    ] = False
    max_frame_bytes: Annotated[
        int,
        Meta(
            ge=64,
            description="longest record: a longer line goes to the dead-letter queue, a longer "
            "length prefix closes the connection",
        ),
    ] = 1024 * 1024


class StreamClientOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Options of the writing end of a framed stream."""

    framing: Annotated[Framing, FRAMING] = "lines"
    payload_only: Annotated[bool, Meta(description="write the payload alone, not the envelope")] = False
    await_ack: Annotated[
        bool,
        Meta(
            description="confirm a batch only when the peer (a wireway tcp/unix input with "
            "`ack: true`) answered `ok` for all of it"
        ),
    ] = False
    ack_timeout: Annotated[float, Meta(gt=0, description="seconds to wait for that answer")] = 10.0
    connect_timeout: Annotated[
        float, Meta(gt=0, description="seconds for a connection attempt (TLS handshake included)")
    ] = 5.0
    reconnect_initial: Annotated[float, Meta(gt=0, description="seconds before the first reconnect")] = 0.5
    reconnect_max: Annotated[float, Meta(gt=0, description="cap of the doubling reconnect delay")] = 30.0
    reconnect_jitter: Annotated[
        float, Meta(ge=0, le=1, description="part of each delay taken off at random (0: none)")
    ] = 0.2

    def __post_init__(self) -> None:
        if self.reconnect_initial > self.reconnect_max:
            raise ValueError("must not exceed reconnect_max - at `$.reconnect_initial`")


def snippet(data: bytes) -> str:
    """The start of a record, as text, for its dead-letter entry."""
    text = data[:256].decode("utf-8", "replace")
    return text + "..." if len(data) > 256 else text


def frame(record: bytes, framing: Framing) -> bytes:
    """One record on the wire."""
    if framing == "lines":
        return record + b"\n"
    return len(record).to_bytes(4, "big") + record


class FrameError(Exception):
    """A length prefix over the limit: the stream cannot be followed any further."""


class Deframer:
    """Cuts a byte stream into frames; `feed` returns the complete ones and the records
    refused (too long) as (start of the record, reason)."""

    def __init__(self, framing: Framing, limit: int) -> None:
        self.framing = framing
        self.limit = limit
        self.rest = b""
        self.skipping = False  # inside a line already refused as too long

    def feed(self, chunk: bytes) -> tuple[list[bytes], list[tuple[str, str]]]:
        data = self.rest + chunk
        if self.framing == "length":
            return self._lengths(data), []
        bad: list[tuple[str, str]] = []
        if self.skipping:
            cut = data.find(b"\n")
            if cut < 0:
                self.rest = b""
                return [], []
            data, self.skipping = data[cut + 1 :], False
        cut = data.rfind(b"\n")
        lines = data[:cut].split(b"\n") if cut >= 0 else []
        self.rest = data[cut + 1 :]
        if len(self.rest) > self.limit:
            bad.append((snippet(self.rest), f"line over max_frame_bytes ({self.limit})"))
            self.rest, self.skipping = b"", True
        frames: list[bytes] = []
        for line in lines:
            if len(line) > self.limit:
                bad.append((snippet(line), f"line over max_frame_bytes ({self.limit})"))
            else:
                frames.append(line.removesuffix(b"\r"))
        return frames, bad

    def _lengths(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        pos, end = 0, len(data)
        while end - pos >= 4:
            size = int.from_bytes(data[pos : pos + 4], "big")
            if size > self.limit:
                raise FrameError(f"a frame of {size} bytes is over max_frame_bytes ({self.limit})")
            if end - pos - 4 < size:
                break
            frames.append(data[pos + 4 : pos + 4 + size])
            pos += 4 + size
        self.rest = data[pos:]
        return frames

    def end(self) -> tuple[list[bytes], list[tuple[str, str]]]:
        """What is left when the peer closes: a last line without its newline, or a
        frame cut short."""
        rest, self.rest = self.rest, b""
        if self.framing == "lines":
            return ([rest.removesuffix(b"\r")] if rest.strip() and not self.skipping else []), []
        return [], ([(snippet(rest), "the connection closed inside a frame")] if rest else [])


def reads_lines(codec: Codec) -> bool:
    """Whether a codec decodes line by line (every format decodes whole frames)."""
    return type(codec).decode_line is not Codec.decode_line


class StreamReceiver:
    """The reading end: each connection's frames decoded with the entry's format and
    ingested, a whole read as one batch."""

    def __init__(
        self, ctx: InputContext, name: str, options: StreamServerOptions, new_codec: Callable[[], Codec]
    ) -> None:
        self.ctx = ctx
        self.name = name
        self.options = options
        self.new_codec = new_codec

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read one connection until it closes (or sends a frame too long to skip)."""
        opts = self.options
        deframer = Deframer(opts.framing, opts.max_frame_bytes)
        codec = self.new_codec()
        try:
            while True:
                chunk = await reader.read(CHUNK)
                if not chunk:
                    break
                frames, bad = deframer.feed(chunk)
                if frames or bad:
                    await self.ingest(codec, frames, bad, writer)
            frames, bad = deframer.end()
            if frames or bad:
                await self.ingest(codec, frames, bad, writer)
        except FrameError as exc:
            logger.warning("connection closed", input=self.name, reason=str(exc))
            if opts.ack:
                writer.write(f"error {exc}\n".encode())
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.drain()

    async def ingest(
        self, codec: Codec, frames: list[bytes], bad: list[tuple[str, str]], writer: asyncio.StreamWriter
    ) -> None:
        values: list[Any] = []
        errors: list[tuple[Any, str]] = list(bad)
        lines = self.options.framing == "lines"
        for data in frames:
            if lines:
                record = codec.decode_line(data)
                records = [record] if record is not None else []
            else:
                records = codec.decode(data)
            for rec in records:
                if rec.error is not None:
                    errors.append((snippet(data), rec.error))
                else:
                    values.append(rec.value)
        try:
            result = await self.ctx.ingest(values, source=self.name, errors=errors)
        except Exception as exc:
            if self.options.ack:
                writer.write(f"error {(str(exc) or type(exc).__name__).splitlines()[0]}\n".encode())
            raise
        if self.options.ack:
            kept, read = len(result.accepted), len(frames) + len(bad)
            writer.write(f"ok {kept}\n".encode() if kept == read else f"ok {kept} of {read}\n".encode())
            await writer.drain()


async def close_clients(clients: dict[asyncio.Task[None], asyncio.StreamWriter]) -> None:
    """End a server's connections: each read sees the connection go; a task still
    storing a batch after a moment is cancelled."""
    for writer in clients.values():
        writer.transport.abort()
    tasks = list(clients)
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=2)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
