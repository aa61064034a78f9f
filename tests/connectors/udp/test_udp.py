"""The udp input and output on loopback: unicast, broadcast (127.255.255.255) and a
multicast group joined on `lo` with TTL 0, so no datagram leaves this machine.

UDP may drop datagrams when a receive buffer is full; the senders here go at a
modest, bounded pace and the receivers ask for a large buffer, so on loopback every
datagram is expected to arrive."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port, wireway
from support import engine_from, eventually
from wireway.config import load_pattern
from wireway.runtime.dlq import DlqAdmin

GROUP = "239.255.73.17"
BUFFER = 4 * 1024 * 1024


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def receiver_text(name: str, inputs: list[str], out: Collector) -> str:
    listed = "\n".join(f"    - {entry}" for entry in inputs)
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
{listed}
  output:
    - {{type: tcp, address: "127.0.0.1:{out.port}", payload_only: true}}
"""


def sender_text(port: int, output: str) -> str:
    return f"""
pattern: {{name: sender}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {output}
"""


async def feed(port: int, count: int) -> None:
    """JSON lines into a tcp input, 20 at a time (a modest pace for the datagrams)."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for start in range(0, count, 20):
        writer.write(b"".join(b'{"n": %d}\n' % n for n in range(start, min(start + 20, count))))
        await writer.drain()
        await asyncio.sleep(0.005)
    writer.close()
    await writer.wait_closed()


async def send_datagrams(port: int, payloads: list[bytes], host: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i, data in enumerate(payloads):
            sock.sendto(data, (host, port))
            if i % 20 == 19:
                await asyncio.sleep(0.005)


async def test_unicast_thousand_datagrams(tmp_path: Path, out: Collector) -> None:
    """1,000 datagrams sent at a modest pace to a udp input on 127.0.0.1 all arrive."""
    port = free_udp_port()
    entry = f'{{type: udp, address: "127.0.0.1:{port}", receive_buffer: {BUFFER}}}'
    async with engine_from(tmp_path, receiver_text("unicast", [entry], out)):
        await send_datagrams(port, [b'{"n": %d}' % n for n in range(1000)])
        await eventually(lambda: len(out.numbers()) >= 1000)
    assert sorted(out.numbers()) == list(range(1000))


async def test_multicast_group_on_lo_reaches_every_listener(tmp_path: Path, out: Collector) -> None:
    """A udp output sends 1,000 messages to a group on `lo` (TTL 0, loopback on); two
    udp inputs sharing the port (reuse_port) each get every one of them."""
    port, feed_port = free_udp_port(), free_port()
    listener = (
        f'{{type: udp, address: "{GROUP}:{port}", interface: lo, reuse_port: true, receive_buffer: {BUFFER}}}'
    )
    output = (
        f'{{type: udp, address: "{GROUP}:{port}", interface: lo, ttl: 0, loopback: true, payload_only: true}}'
    )
    async with engine_from(folder(tmp_path / "r"), receiver_text("group", [listener, listener], out)):
        async with engine_from(folder(tmp_path / "s"), sender_text(feed_port, output)):
            await feed(feed_port, 1000)
            await eventually(lambda: len(out.numbers()) >= 2000, timeout=20)
    numbers = out.numbers()
    assert sorted(numbers) == sorted(list(range(1000)) * 2)


async def test_multicast_interface_by_address(tmp_path: Path, out: Collector) -> None:
    """`interface` may be the interface's IPv4 address instead of its name."""
    port, feed_port = free_udp_port(), free_port()
    listener = f'{{type: udp, address: "{GROUP}:{port}", interface: "127.0.0.1"}}'
    output = f'{{type: udp, address: "{GROUP}:{port}", interface: "127.0.0.1", ttl: 0, payload_only: true}}'
    async with engine_from(folder(tmp_path / "r"), receiver_text("group", [listener], out)):
        async with engine_from(folder(tmp_path / "s"), sender_text(feed_port, output)):
            await feed(feed_port, 50)
            await eventually(lambda: len(out.numbers()) >= 50)
    assert sorted(out.numbers()) == list(range(50))


async def test_broadcast_on_loopback(tmp_path: Path, out: Collector) -> None:
    """With `broadcast: true` the output sends to 127.255.255.255; an input bound to that
    address gets the datagrams."""
    port, feed_port = free_udp_port(), free_port()
    listener = f'{{type: udp, address: "127.255.255.255:{port}"}}'
    output = f'{{type: udp, address: "127.255.255.255:{port}", broadcast: true, payload_only: true}}'
    async with engine_from(folder(tmp_path / "r"), receiver_text("bcast", [listener], out)):
        async with engine_from(folder(tmp_path / "s"), sender_text(feed_port, output)):
            await feed(feed_port, 100)
            await eventually(lambda: len(out.numbers()) >= 100)
    assert sorted(out.numbers()) == list(range(100))


async def test_oversized_and_malformed_datagrams_are_dead_lettered(tmp_path: Path, out: Collector) -> None:
    """A datagram over max_datagram_bytes and one that is not JSON go to the DLQ; the
    others arrive, decoded with the entry's format."""
    port = free_udp_port()
    entry = f'{{type: udp, address: "127.0.0.1:{port}", max_datagram_bytes: 100}}'
    async with engine_from(tmp_path, receiver_text("sizes", [entry], out)) as engine:
        await send_datagrams(port, [b'{"n": 1}', b"x" * 500, b"{nope", b'{"n": 2}'])
        await eventually(lambda: len(out.numbers()) >= 2)
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("sizes") == 2)
    reasons = sorted(r["reason"] for r in DlqAdmin(tmp_path / "data" / "buffer.db").list("sizes"))
    assert any("over max_datagram_bytes (100)" in r for r in reasons)
    assert any("invalid JSON" in r for r in reasons)
    assert sorted(out.numbers()) == [1, 2]


async def test_output_dead_letters_records_too_long(tmp_path: Path) -> None:
    """A message longer than the output's max_datagram_bytes is dead-lettered; the rest
    are sent."""
    port, feed_port = free_udp_port(), free_port()
    got: list[bytes] = []

    class Keep(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.append(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Keep, local_addr=("127.0.0.1", port))
    output = f'{{type: udp, address: "127.0.0.1:{port}", payload_only: true, max_datagram_bytes: 30}}'
    try:
        async with engine_from(tmp_path, sender_text(feed_port, output)) as engine:
            _, writer = await asyncio.open_connection("127.0.0.1", feed_port)
            writer.write(b'{"n": 1}\n{"n": 2, "pad": "' + b"x" * 100 + b'"}\n{"n": 3}\n')
            await writer.drain()
            writer.close()
            await eventually(lambda: len(got) >= 2)
            assert engine.sqlite is not None
            await eventually(lambda: engine.sqlite.dlq_depth("sender") == 1)
    finally:
        transport.close()
    assert [json.loads(d)["n"] for d in got] == [1, 3]
    rows = DlqAdmin(tmp_path / "data" / "buffer.db").list("sender")
    assert "over max_datagram_bytes (30)" in rows[0]["reason"]


@pytest.mark.parametrize(
    ("kind", "entry", "key", "message"),
    [
        ("input", "{type: udp, address: 'localhost:5000'}", "address", "numeric"),
        ("input", "{type: udp, address: '127.0.0.1:5000', interface: lo}", "interface", "multicast"),
        ("input", f"{{type: udp, address: '{GROUP}:5000', interface: nosuch0}}", "interface", "nosuch0"),
        ("input", "{type: udp, address: '[ff02::1]:5000'}", "address", "IPv6"),
        (
            "input",
            "{type: udp, address: '127.0.0.1:5000', max_datagram_bytes: 70000}",
            "max_datagram_bytes",
            "",
        ),
        ("output", f"{{type: udp, address: '{GROUP}:5000', ttl: 300}}", "ttl", ""),
        ("output", "{type: udp, address: '127.0.0.1'}", "address", ""),
        ("output", "{type: udp, address: '127.0.0.1:9', interface: lo}", "interface", "multicast"),
    ],
)
def test_check_names_the_key(tmp_path: Path, kind: str, entry: str, key: str, message: str) -> None:
    """`wireway check` reports a wrong udp option at its key, without a traceback."""
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
