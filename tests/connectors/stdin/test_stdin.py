"""The `stdin` input: lines until the end of the input, then finished; through a real
`wireway run` reading a pipe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import free_port
from support import engine_from, eventually, written_lines
from wireway.connectors.stdin.input import StdinInput


def lines_of(path: Path) -> list[Any]:
    return written_lines(path)


def pattern(out: Path, entry: str = "{type: stdin}") -> str:
    return f"""
pattern: {{name: from-stdin}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: '{out}', payload_only: true}}
"""


async def test_reads_until_the_end_then_has_finished(tmp_path: Path) -> None:
    """Lines of a descriptor (`fd`) are messages, a bad one goes to the DLQ; at the end the
    input has finished and says so to the engine."""
    read_end, write_end = os.pipe()
    out = tmp_path / "out.jsonl"
    try:
        async with engine_from(tmp_path, pattern(out, f"{{type: stdin, fd: {read_end}}}")) as engine:
            inp = engine.runners[0].inputs[0]
            assert isinstance(inp, StdinInput)
            calls: list[bool] = []
            inp.ctx.finished = lambda: calls.append(True)
            os.write(write_end, b'{"n": 1}\n{"n": 2}\nnot json\n')
            await eventually(lambda: len(lines_of(out)) == 2)
            assert inp.state == "running"
            os.write(write_end, b'{"n": 3}')  # the last line needs no newline
            os.close(write_end)
            write_end = -1
            await eventually(lambda: inp.state == "finished")
            assert calls == [True]
            assert engine.sqlite is not None
            await eventually(lambda: engine.sqlite.dlq_depth("from-stdin") == 1)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    assert [v["n"] for v in lines_of(out)] == [1, 2, 3]


async def test_a_regular_file_as_stdin(tmp_path: Path) -> None:
    """`wireway run p.yaml < file`: a file is read too (in a worker thread)."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"n": {i}}}\n' for i in range(100)))
    out = tmp_path / "out.jsonl"
    fd = os.open(source, os.O_RDONLY)
    try:
        async with engine_from(tmp_path, pattern(out, f"{{type: stdin, fd: {fd}}}")) as engine:
            await eventually(lambda: engine.runners[0].inputs[0].state == "finished")
            await eventually(lambda: len(lines_of(out)) == 100)
    finally:
        os.close(fd)
    assert [v["n"] for v in lines_of(out)] == list(range(100))


def run_wireway(tmp_path: Path, stdin: bytes, close: bool = True) -> subprocess.Popen[bytes]:
    (tmp_path / "p.yaml").write_text(pattern(tmp_path / "out.jsonl"))
    process = subprocess.Popen(
        [
            sys.executable, "-m", "wireway", "run", str(tmp_path / "p.yaml"),
            "--http", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(stdin)
    if close:
        process.stdin.close()
    else:
        process.stdin.flush()
    return process


LINES = b"".join(b'{"n": %d}\n' % i for i in range(50))


async def test_wireway_run_reads_a_pipe_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """A real `wireway run` delivers every line it read from a pipe still open and exits 0
    on SIGTERM."""
    process = run_wireway(tmp_path, LINES, close=False)
    try:
        await eventually(lambda: len(lines_of(tmp_path / "out.jsonl")) == 50, timeout=30)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
    assert [v["n"] for v in lines_of(tmp_path / "out.jsonl")] == list(range(50))


def test_wireway_run_ends_by_itself_at_the_end_of_stdin(tmp_path: Path) -> None:
    """`printf ... | wireway run pattern.yaml` exits 0 by itself with every line delivered."""
    process = run_wireway(tmp_path, LINES)
    try:
        code = process.wait(timeout=8)
    finally:
        process.kill()
        process.wait()
    assert code == 0
    assert [v["n"] for v in lines_of(tmp_path / "out.jsonl")] == list(range(50))
