"""Line streams, the same way for every connector that reads or writes one (a process's
stdout and stdin, a named pipe, wireway's own stdin).

Reading: `LineReader` hands back the values of the *complete* lines each read brought,
decoded through the entry's format (`Codec.decode_line`), with the lines that did not
decode as `(raw, reason)` pairs for `ingest(errors=...)`, so they land in the DLQ. The
bytes after the last newline wait for the next read; at the end of the stream they
count as a last line. A line longer than `max_line_bytes` is not kept whole: its first
bytes go to the DLQ with the reason and the rest, up to its newline, is skipped, so one
runaway writer cannot fill the memory.

`pipe_reader` reads a pipe, FIFO, socket or terminal on the event loop.

Writing: `write_all` puts bytes into a non-blocking descriptor (a pipe, a FIFO) without
blocking the event loop, waiting for room when the pipe is full.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from wireway.errors import WirewayError
from wireway.formats.codec import Codec

READ_SIZE = 256 * 1024
HEAD = 200  # bytes of an over-long line kept for its DLQ entry

Read = Callable[[int], Awaitable[bytes]]


def line_codec(new_codec: Callable[[], Any]) -> Codec:
    """A new codec of an entry's format, refused when the format cannot read lines."""
    codec: Codec = new_codec()
    if type(codec).decode_line is Codec.decode_line:
        raise WirewayError(f"format `{codec.name}` cannot read a stream line by line")
    return codec


class LineSplitter:
    """Cuts a byte stream into complete lines, keeping the partial one between reads."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self.rest = b""
        self.skipping = False  # inside an over-long line: drop bytes up to its newline

    def feed(self, chunk: bytes) -> tuple[list[bytes], list[bytes]]:
        """(complete lines without their newline, heads of the over-long ones)."""
        if self.skipping:
            cut = chunk.find(b"\n")
            if cut < 0:
                return [], []
            chunk = chunk[cut + 1 :]
            self.skipping = False
        data = self.rest + chunk if self.rest else chunk
        cut = data.rfind(b"\n")
        parts = data[:cut].split(b"\n") if cut >= 0 else []
        tail = data[cut + 1 :]
        lines: list[bytes] = []
        long: list[bytes] = []
        for line in parts:
            line = line.removesuffix(b"\r")
            (long if len(line) > self.max_line_bytes else lines).append(line)
        if len(tail) > self.max_line_bytes:
            long.append(tail)
            self.skipping = True
            tail = b""
        self.rest = tail
        return lines, [line[:HEAD] for line in long]

    def end(self) -> list[bytes]:
        """The last line when the stream ends without a newline (then it is empty again)."""
        tail, self.rest, self.skipping = self.rest, b"", False
        tail = tail.removesuffix(b"\r")
        return [tail] if tail else []


@dataclass
class Batch:
    """What one read brought: decoded values and the lines that are not one."""

    values: list[Any] = field(default_factory=list)
    errors: list[tuple[Any, str]] = field(default_factory=list)


class LineReader:
    """Lines of one stream, read with `read(n)` (e.g. a StreamReader's), decoded by `codec`.

    Args:
        read: returns up to n bytes, b"" at the end of the stream.
        codec: the stream's codec (`line_codec(iface.new_codec)`); None reads raw lines.
        max_line_bytes: the longest line kept (see the module docstring).
        where: names the stream in DLQ reasons (`stdout of sensor.py line 12: ...`).
    """

    def __init__(self, read: Read, codec: Codec | None, *, max_line_bytes: int, where: str = "") -> None:
        self.read_chunk = read
        self.codec = codec
        self.splitter = LineSplitter(max_line_bytes)
        self.max_line_bytes = max_line_bytes
        self.where = where
        self.number = 0  # lines read so far, for `where`
        self.ended = False

    async def lines(self) -> tuple[list[bytes], list[bytes]] | None:
        """The next read's complete lines and over-long heads; None once the stream ended."""
        while not self.ended:
            chunk = await self.read_chunk(READ_SIZE)
            if not chunk:
                self.ended = True
                last = self.splitter.end()
                return (last, []) if last else None
            lines, long = self.splitter.feed(chunk)
            if lines or long:
                return lines, long
        return None

    async def read(self) -> Batch | None:
        """The next read's decoded lines; None once the stream ended."""
        got = await self.lines()
        return None if got is None else self.decode(*got)

    def decode(self, lines: list[bytes], long: list[bytes]) -> Batch:
        batch = Batch()
        codec = self.codec
        for line in lines:
            self.number += 1
            if codec is None:
                batch.values.append(line)
                continue
            record = codec.decode_line(line, f"{self.where} line {self.number}".strip())
            if record is None:
                continue
            if record.error is not None:
                batch.errors.append((line.decode("utf-8", "replace"), record.error))
            else:
                batch.values.append(record.value)
        for head in long:
            self.number += 1
            where = f"{self.where} line {self.number}".strip()
            reason = f"{where}: line longer than {self.max_line_bytes} bytes"
            batch.errors.append((head.decode("utf-8", "replace") + "...", reason))
        return batch


async def pipe_reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A StreamReader over a pipe, FIFO, socket or terminal read on the event loop; the
    transport owns the descriptor (closing it closes the descriptor)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    try:
        transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(fd, "rb", buffering=0))
    except BaseException:
        os.close(fd)
        raise
    return reader, transport


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def write_all(fd: int, data: bytes) -> None:
    """Write every byte to a non-blocking descriptor, waiting on the loop while it is full.

    Raises BrokenPipeError (or another OSError) when the reader has gone.
    """
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_writer(fd, _wake, ready)
            try:
                await ready
            finally:
                loop.remove_writer(fd)
            continue
        view = view[written:]
