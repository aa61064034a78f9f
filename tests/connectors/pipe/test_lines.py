"""connectors/lines.py, which every stream connector (exec, pipe, stdin) reads lines with:
any cutting of a stream into reads gives the same lines; over-long lines are cut to
their head and reported; decoding errors come back with the line number."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wireway.connectors.lines import HEAD, LineReader, LineSplitter, line_codec, write_all
from wireway.errors import WirewayError
from wireway.formats.codec import Codec, NoOptions
from wireway.formats.json_format import JsonCodec
from wireway.registry import lookup


def split_all(chunks: list[bytes], max_bytes: int) -> tuple[list[bytes], list[bytes]]:
    splitter = LineSplitter(max_bytes)
    lines: list[bytes] = []
    long: list[bytes] = []
    for chunk in chunks:
        got, cut = splitter.feed(chunk)
        lines += got
        long += cut
    return lines + splitter.end(), long


@given(
    st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    st.lists(st.integers(min_value=1, max_value=30), max_size=10),
)
def test_any_cutting_into_reads_gives_the_same_lines(lines: list[bytes], cuts: list[int]) -> None:
    """Lines come back whole and in order wherever the reads end."""
    stream = b"".join(line + b"\n" for line in lines)
    chunks, at = [], 0
    for size in cuts:
        chunks.append(stream[at : at + size])
        at += size
    chunks.append(stream[at:])
    got, long = split_all(chunks, 1000)
    assert got == [x.removesuffix(b"\r") for x in lines]  # one CR of a CR-LF goes
    assert long == []


def test_over_long_lines_are_cut_to_their_head_and_the_rest_skipped() -> None:
    """A line over the limit, whether it ends in this read or a later one, is reported once."""
    big = b"x" * 500
    got, long = split_all([b"a\n" + big[:300], big[300:] + b"\nb\r\n", big + b"\nc"], 100)
    assert got == [b"a", b"b", b"c"]
    assert long == [big[:HEAD], big[:HEAD]]


async def test_reader_decodes_lines_and_numbers_the_bad_ones() -> None:
    """Values of good lines; a bad line and an over-long one as (raw, reason)."""
    data = [b'{"n": 1}\nnot js', b"on\n\n" + b"[" * 100 + b"\n", b'{"n": 2}']

    async def read(n: int) -> bytes:
        return data.pop(0) if data else b""

    reader = LineReader(read, JsonCodec(NoOptions()), max_line_bytes=64, where="test")
    values, errors = [], []
    while (batch := await reader.read()) is not None:
        values += batch.values
        errors += batch.errors
    assert values == [{"n": 1}, {"n": 2}]
    assert errors[0][0] == "not json"
    assert errors[0][1].startswith("test line 2: invalid JSON")
    assert errors[1][1] == "test line 4: line longer than 64 bytes"


def test_a_format_that_cannot_read_lines_is_refused() -> None:
    """A codec without decode_line fails the start with a sentence naming it."""

    class Whole(Codec):
        name = "whole"

        def encode(self, msg: object, payload_only: bool = False) -> bytes:
            return b""

    with pytest.raises(WirewayError, match="format `whole` cannot read a stream line by line"):
        line_codec(lambda: Whole())
    spec = lookup("format", "text")
    assert spec is not None
    assert line_codec(lambda: spec.cls(None)).name == "text"


async def test_write_all_waits_for_room_in_a_full_pipe() -> None:
    """More than a pipe holds is written as the reader makes room, without blocking the loop."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    os.set_blocking(read_end, False)
    data = os.urandom(1 << 20)
    received = bytearray()

    async def drain() -> None:
        while len(received) < len(data):
            await asyncio.sleep(0.001)  # the loop is free while the writer waits
            with contextlib.suppress(BlockingIOError):
                received.extend(os.read(read_end, 1 << 16))

    try:
        await asyncio.wait_for(asyncio.gather(write_all(write_end, data), drain()), 10)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert bytes(received) == data
