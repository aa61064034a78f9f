"""The `pipe` input and output with real FIFOs: writers and readers that come and go."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port
from support import engine_from, eventually, written_lines
from wireway.connectors.pipe.output import PipeOutput
from wireway.errors import WirewayError


def lines_of(path: Path) -> list[Any]:
    return written_lines(path)


def write_once(fifo: Path, text: str) -> None:
    """One writer: open the FIFO (the input has it open for reading), write, close."""
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


async def send(port: int, values: list[Any]) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(json.dumps(v).encode() + b"\n" for v in values))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_input_reads_writers_that_come_and_go(tmp_path: Path) -> None:
    """The FIFO is made with its mode; each writer's lines arrive, a half line waits for its
    end, a malformed line goes to the DLQ, and closing the FIFO is not the end."""
    fifo, out = tmp_path / "in.fifo", tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: pipe-in}}
interfaces:
  input:
    - {{type: pipe, path: '{fifo}', mode: "0640"}}
  output:
    - {{type: file, address: '{out}', payload_only: true}}
"""
    async with engine_from(tmp_path, text) as engine:
        assert stat.S_ISFIFO(fifo.stat().st_mode)
        assert stat.S_IMODE(fifo.stat().st_mode) == 0o640
        write_once(fifo, '{"n": 1}\n{"n": 2}\n')
        await eventually(lambda: len(lines_of(out)) == 2)
        write_once(fifo, '{"n": 3}\nnot json\n{"n"')  # the writer goes away mid-line
        await eventually(lambda: len(lines_of(out)) == 3)
        write_once(fifo, '{"n": 4}\n')
        await eventually(lambda: len(lines_of(out)) == 4)
        assert engine.sqlite is not None
        # the broken line and the cut one (the stream ended with it) are dead-lettered
        await eventually(lambda: engine.sqlite.dlq_depth("pipe-in") == 2)
    assert [v["n"] for v in lines_of(out)] == [1, 2, 3, 4]


async def test_input_refuses_a_path_that_is_not_a_fifo(tmp_path: Path) -> None:
    """A regular file where the FIFO should be is an error at start, naming it."""
    (tmp_path / "plain").write_text("")
    text = f"""
pattern: {{name: pipe-bad}}
interfaces:
  input:
    - {{type: pipe, path: '{tmp_path}/plain'}}
  output:
    - {{type: stdout}}
"""
    with pytest.raises(WirewayError, match="is not a named pipe"):
        async with engine_from(tmp_path, text):
            pass


async def test_output_waits_for_a_reader_that_goes_away_and_comes_back(tmp_path: Path) -> None:
    """Messages written while no reader is there are retried until one opens the FIFO."""
    fifo, port = tmp_path / "out.fifo", free_port()
    text = f"""
pattern: {{name: pipe-out}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{type: pipe, path: '{fifo}', payload_only: true, reader_wait: 0.1}}
settings: {{retries: 100, backoff_base: 0.02, backoff_max: 0.1, breaker_threshold: 1000}}
"""
    async with engine_from(tmp_path, text) as engine:
        output = engine.runners[0].routes[0].output
        assert isinstance(output, PipeOutput)
        first = await asyncio.create_subprocess_exec("head", "-n", "3", str(fifo), stdout=PIPE)
        await send(port, [{"n": 1}, {"n": 2}, {"n": 3}])
        got, _ = await asyncio.wait_for(first.communicate(), 10)
        assert [json.loads(x)["n"] for x in got.splitlines()] == [1, 2, 3]
        # no reader now: these wait (the write finds EPIPE, then no reader at all)
        await send(port, [{"n": 4}, {"n": 5}])
        route = engine.runners[0].routes[0]
        await eventually(lambda: route.state == "retrying")
        assert route.delivered == 3
        second = await asyncio.create_subprocess_exec("head", "-n", "2", str(fifo), stdout=PIPE)
        got, _ = await asyncio.wait_for(second.communicate(), 10)
        assert [json.loads(x)["n"] for x in got.splitlines()] == [4, 5]
        await eventually(lambda: route.delivered == 5)


async def test_output_without_a_reader_dead_letters_after_the_retries(tmp_path: Path) -> None:
    """With nobody reading, a write gives up after `reader_wait` and the retries run out."""
    fifo, port = tmp_path / "out.fifo", free_port()
    text = f"""
pattern: {{name: pipe-alone}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{type: pipe, path: '{fifo}', reader_wait: 0.05}}
settings: {{retries: 1, backoff_base: 0.01, backoff_max: 0.02}}
"""
    async with engine_from(tmp_path, text) as engine:
        await send(port, [{"n": 1}])
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("pipe-alone") == 1)
        assert engine.runners[0].routes[0].last_error.startswith("RetryableError: no reader")


async def test_input_makes_the_fifo_again_when_it_was_removed(tmp_path: Path) -> None:
    """A FIFO removed while wireway reads it is made again after its writer has gone."""
    fifo, out = tmp_path / "in.fifo", tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: pipe-again}}
interfaces:
  input:
    - {{type: pipe, path: '{fifo}'}}
  output:
    - {{type: file, address: '{out}', payload_only: true}}
"""
    async with engine_from(tmp_path, text):
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        fifo.unlink()
        os.write(fd, b'{"n": 1}\n')
        os.close(fd)
        await eventually(lambda: len(lines_of(out)) == 1)
        await eventually(fifo.exists)
        write_once(fifo, '{"n": 2}\n')
        await eventually(lambda: len(lines_of(out)) == 2)
