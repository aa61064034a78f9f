"""The unix input and output on real unix-domain sockets: stream (length framing and
acks, as tcp) and datagram, the socket file's mode and owner, a stale socket file."""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port, wireway
from support import engine_from, eventually
from wireway.config import load_pattern
from wireway.connectors.unix.socketfile import remove_stale
from wireway.errors import WirewayError


class Collector:
    """A plain TCP server of the test's own keeping every JSON line it reads."""

    def __init__(self) -> None:
        self.port = free_port()
        self.values: list[Any] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Collector:
        self.server = await asyncio.start_server(self.client, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            self.values.append(json.loads(line))
        writer.close()

    def numbers(self) -> list[int]:
        return [v["n"] for v in self.values if isinstance(v, dict) and "n" in v]


@pytest.fixture
async def out() -> AsyncIterator[Collector]:
    async with Collector() as collector:
        yield collector


def folder(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


def receiver_text(entry: str, out: Collector) -> str:
    return f"""
pattern: {{name: receiver}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: tcp, address: "127.0.0.1:{out.port}", payload_only: true}}
"""


def sender_text(port: int, entry: str) -> str:
    return f"""
pattern: {{name: sender}}
settings: {{retries: 1000, backoff_max: 0.2, breaker_timeout: 0.2}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {entry}
"""


async def feed(port: int, count: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(b'{"n": %d}\n' % n for n in range(count)))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_stream_relay_with_length_framing_and_acks(tmp_path: Path, out: Collector) -> None:
    """A unix stream output (length-prefixed, waiting for `ok N`) reaches a unix stream
    input; every record arrives in order."""
    path, port = tmp_path / "in.sock", free_port()
    receiver = f"{{type: unix, path: '{path}', framing: length, ack: true}}"
    sender = f"{{type: unix, path: '{path}', framing: length, await_ack: true, payload_only: true}}"
    async with engine_from(folder(tmp_path / "r"), receiver_text(receiver, out)):
        async with engine_from(folder(tmp_path / "s"), sender_text(port, sender)):
            await feed(port, 1000)
            await eventually(lambda: len(out.numbers()) >= 1000)
    assert out.numbers() == list(range(1000))
    assert not path.exists()  # removed at stop


async def test_stream_output_connects_once_the_input_appears(tmp_path: Path, out: Collector) -> None:
    """The output starts before anyone listens, keeps trying with backoff, and delivers
    once the input is there."""
    path, port = tmp_path / "late.sock", free_port()
    sender = (
        f"{{type: unix, path: '{path}', payload_only: true, await_ack: true, "
        "reconnect_initial: 0.05, reconnect_max: 0.2}"
    )
    async with engine_from(folder(tmp_path / "s"), sender_text(port, sender)):
        await feed(port, 100)
        await asyncio.sleep(0.3)
        receiver = f"{{type: unix, path: '{path}', ack: true}}"
        async with engine_from(folder(tmp_path / "r"), receiver_text(receiver, out)):
            await eventually(lambda: len(out.numbers()) >= 100)
    assert out.numbers() == list(range(100))


async def test_datagram_relay(tmp_path: Path, out: Collector) -> None:
    """A unix datagram output sends one datagram per message to a datagram input."""
    path, port = tmp_path / "dg.sock", free_port()
    receiver = f"{{type: unix, path: '{path}', socket: datagram}}"
    sender = f"{{type: unix, path: '{path}', socket: datagram, payload_only: true}}"
    async with engine_from(folder(tmp_path / "r"), receiver_text(receiver, out)):
        async with engine_from(folder(tmp_path / "s"), sender_text(port, sender)):
            await feed(port, 1000)
            await eventually(lambda: len(out.numbers()) >= 1000)
    assert out.numbers() == list(range(1000))


async def test_datagram_input_dead_letters_bad_and_long_datagrams(tmp_path: Path, out: Collector) -> None:
    """Invalid JSON and a datagram over max_frame_bytes go to the DLQ; the rest arrive."""
    path = tmp_path / "dg.sock"
    receiver = f"{{type: unix, path: '{path}', socket: datagram, max_frame_bytes: 64}}"
    async with engine_from(tmp_path, receiver_text(receiver, out)) as engine:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            for data in (b'{"n": 1}', b"{nope", b'{"pad": "' + b"x" * 100 + b'"}', b'{"n": 2}'):
                sock.sendto(data, str(path))
        await eventually(lambda: len(out.numbers()) >= 2)
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("receiver") == 2)
    assert out.numbers() == [1, 2]


async def test_socket_file_mode_and_owner(tmp_path: Path, out: Collector) -> None:
    """The socket file gets `mode`, and `owner`/`group` (here this process's own, which
    needs no privilege)."""
    path = tmp_path / "mode.sock"
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    receiver = f"{{type: unix, path: '{path}', mode: '600', owner: {user}, group: {group}}}"
    async with engine_from(tmp_path, receiver_text(receiver, out)):
        info = path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())


async def test_stale_socket_file_is_replaced(tmp_path: Path, out: Collector) -> None:
    """A socket file left by a process that died (bound, never removed) is removed at
    start and the input listens there."""
    path = tmp_path / "stale.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))
    crashed.close()  # the file stays, nobody listens
    assert path.exists()
    async with engine_from(tmp_path, receiver_text(f"{{type: unix, path: '{path}'}}", out)):
        _, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b'{"n": 5}\n')
        await writer.drain()
        writer.close()
        await eventually(lambda: out.numbers() == [5])


def test_a_live_socket_or_another_file_is_not_removed(tmp_path: Path) -> None:
    """Only a socket nobody listens on is removed: a live one, or a regular file, stays."""
    live = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(live))
        server.listen()
        with pytest.raises(WirewayError, match="another process listens"):
            remove_stale(live)
        assert live.exists()
    datagram = tmp_path / "live-dg.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(datagram))
        with pytest.raises(WirewayError, match="another process listens"):
            remove_stale(datagram)
    plain = tmp_path / "plain.txt"
    plain.write_text("keep me")
    with pytest.raises(WirewayError, match="not a socket"):
        remove_stale(plain)
    assert plain.read_text() == "keep me"


@pytest.mark.parametrize(
    ("kind", "entry", "key", "message"),
    [
        ("input", "{type: unix, path: /tmp/x.sock, mode: '999'}", "mode", "octal"),
        ("input", "{type: unix, path: /tmp/x.sock, socket: datagram, ack: true}", "ack", "stream"),
        ("input", "{type: unix, path: /tmp/x.sock, socket: datagram, framing: length}", "framing", "stream"),
        ("input", "{type: unix, path: /tmp/x.sock, owner: no-such-user-here}", "owner", "no user"),
        ("input", "{type: unix, path: /tmp/x.sock, group: no-such-group-here}", "group", "no group"),
        ("input", f"{{type: unix, path: /tmp/{'x' * 120}.sock}}", "path", "at most"),
        ("input", "{type: unix, path: /tmp/x.sock, socket: seqpacket}", "socket", ""),
        (
            "output",
            "{type: unix, path: /tmp/x.sock, socket: datagram, await_ack: true}",
            "await_ack",
            "stream",
        ),
        ("output", "{type: unix, path: ''}", "path", "socket file"),
    ],
)
def test_check_names_the_key(tmp_path: Path, kind: str, entry: str, key: str, message: str) -> None:
    """`wireway check` reports a wrong unix option at its key, without a traceback."""
    inputs, outputs = (
        (entry, "{type: stdout}") if kind == "input" else ("{type: tcp, address: '127.0.0.1:9'}", entry)
    )
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"pattern: {{name: bad}}\ninterfaces:\n  input:\n    - {inputs}\n  output:\n    - {outputs}\n"
    )
    pattern, errors = load_pattern(path)
    assert pattern is None
    text = [str(e) for e in errors]
    line = 4 if kind == "input" else 6
    assert any(f"bad.yaml:{line} interfaces.{kind}[0].{key}:" in t and message in t for t in text), text
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
