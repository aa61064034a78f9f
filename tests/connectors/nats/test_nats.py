"""The nats input and output against real NATS servers: the local one on 127.0.0.1:4222
(JetStream on), and for the tests that kill the server, a nats-server of the test's
own on a free port with its own store (stopped and started again mid-run).

Every test uses its own subjects, streams and consumers, named from the test and a
random part, and deletes its streams at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from conftest import free_port, need_service, wireway
from support import Sink, engine_from, eventually
from wireway.observability.metrics import REGISTRY

COUNT = 1000


def unique(request: pytest.FixtureRequest) -> str:
    return f"ww_{request.node.name[:30]}_{uuid.uuid4().hex[:8]}".replace("[", "_").replace("]", "_")


def lines(path: Path) -> list[Any]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def counted(pattern: str, component: str, outcome: str) -> float:
    labels = {"pattern": pattern, "component": component, "outcome": outcome}
    return REGISTRY.get_sample_value("wireway_messages_total", labels) or 0.0


@pytest.fixture
async def nc() -> AsyncIterator[Client]:
    need_service("nats", 4222)
    client = await nats.connect("nats://127.0.0.1:4222")
    try:
        yield client
    finally:
        await client.close()


class OwnServer:
    """A nats-server of the test (JetStream, file store in tmp), stopped and started at will."""

    def __init__(self, tmp: Path) -> None:
        if shutil.which("nats-server") is None:
            pytest.skip("nats-server is not installed")
        self.port = free_port()
        self.store = tmp / "nats-store"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the test's nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    server = OwnServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def input_pattern(name: str, entry: str, out: Path, extra: str = "") -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
{extra}
"""


def output_pattern(name: str, port: int, entry: str) -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{name: {name}-out, {entry.removeprefix("{")}
settings: {{retries: 1000, backoff_base: 0.05, backoff_max: 0.3, breaker_timeout: 0.3}}
"""


async def send_lines(port: int, values: list[Any]) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(json.dumps(v).encode() + b"\n" for v in values))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def delete_stream(client: Client, stream: str) -> None:
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await client.jetstream().delete_stream(stream)


async def test_core_input_takes_1000(nc: Client, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A core subscription with a queue group: 1,000 published messages reach the file."""
    name = unique(request)
    out = tmp_path / "out.jsonl"
    entry = f"{{type: nats, subject: '{name}.in', queue_group: workers}}"
    async with engine_from(tmp_path, input_pattern(name, entry, out)) as engine:
        assert engine.health()["services"]["nats"] == "up"
        for attempt in range(100):  # the SUB reaches the server shortly after the start
            await nc.publish(f"{name}.in", json.dumps({"probe": attempt}).encode())
            await nc.flush()
            if lines(out):
                break
            await asyncio.sleep(0.05)
        for i in range(COUNT):
            await nc.publish(f"{name}.in", json.dumps({"n": i}).encode())
        await nc.flush()
        await eventually(lambda: len([v for v in lines(out) if "n" in v]) >= COUNT, timeout=30)
    assert [v["n"] for v in lines(out) if "n" in v] == list(range(COUNT))


async def test_jetstream_input_takes_1000_and_acknowledges_them(
    nc: Client, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A durable pull consumer wireway creates with its stream: 1,000 messages reach the
    file and every one is acknowledged."""
    name = unique(request)
    out = tmp_path / "out.jsonl"
    entry = (
        f"{{type: nats, jetstream: true, subject: '{name}.in', stream: {name}, create: true, "
        f"durable: d_{name}, batch: 100}}"
    )
    js = nc.jetstream()
    try:
        async with engine_from(tmp_path, input_pattern(name, entry, out)):
            for i in range(COUNT):
                await js.publish(f"{name}.in", json.dumps({"n": i}).encode())
            await eventually(lambda: len(lines(out)) >= COUNT, timeout=30)
            await eventually(lambda: counted(name, "ingest", "accepted") >= COUNT)
            for _ in range(50):
                info = await js.consumer_info(name, f"d_{name}")
                if info.num_ack_pending == 0:
                    break
                await asyncio.sleep(0.1)
            assert info.num_ack_pending == 0
            assert info.num_pending == 0
        assert sorted(v["n"] for v in lines(out)) == list(range(COUNT))
    finally:
        await delete_stream(nc, name)


async def test_jetstream_dead_letters_are_terminated(
    nc: Client, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Invalid JSON and a record `validate` refuses go to wireway's DLQ and are terminated
    (never redelivered); the good one is stored and acknowledged."""
    name = unique(request)
    out = tmp_path / "out.jsonl"
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["n"]}))
    entry = (
        f"{{type: nats, jetstream: true, subject: '{name}.in', stream: {name}, create: true, ack_wait: 1}}"
    )
    steps = f"processors:\n  - validate: {{schema: '{schema}'}}"
    js = nc.jetstream()
    try:
        async with engine_from(tmp_path, input_pattern(name, entry, out, steps)) as engine:
            for body in (b"{not json", b'{"m": 1}', b'{"n": 7}'):
                await js.publish(f"{name}.in", body)
            await eventually(lambda: len(lines(out)) == 1)
            await eventually(lambda: engine.sqlite.dlq_depth(name) == 2)
            await asyncio.sleep(1.5)  # past ack_wait: anything not settled would come again
            info = await js.consumer_info(name, f"wireway-{name}")
            assert info.num_ack_pending == 0
            assert info.num_redelivered == 0
            assert engine.sqlite.dlq_depth(name) == 2
        assert lines(out) == [{"n": 7}]
    finally:
        await delete_stream(nc, name)


async def test_jetstream_full_buffer_naks_and_loses_nothing(
    nc: Client, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The output's peer refuses (503) until the buffer is full: the input naks what it
    cannot store (JetStream offers it again after `nak_delay`); once the peer answers
    every message is delivered."""
    name = unique(request)
    sink = Sink(default=503)
    entry = (
        f"{{type: nats, jetstream: true, subject: '{name}.in', stream: {name}, create: true, "
        "batch: 10, nak_delay: 0.2}"
    )
    text = f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: http_client, address: '{sink.url}', payload_only: true}}
settings: {{buffer_size: 20, batch_size: 10, retries: 1000, backoff_base: 0.05, backoff_max: 0.2,
  breaker_timeout: 0.2}}
"""
    js = nc.jetstream()
    try:
        async with engine_from(tmp_path, text):
            for i in range(100):
                await js.publish(f"{name}.in", json.dumps({"n": i}).encode())

            async def redelivered() -> int:
                info = await js.consumer_info(name, f"wireway-{name}")
                return int(info.num_redelivered)

            for _ in range(100):
                if await redelivered() > 0:
                    break
                await asyncio.sleep(0.1)
            assert await redelivered() > 0, "nothing was refused with a nak"
            sink.default = 200
            await eventually(lambda: {v["n"] for v in sink.received} == set(range(100)), timeout=30)
    finally:
        sink.close()
        await delete_stream(nc, name)


async def test_jetstream_input_loses_nothing_when_the_server_restarts(
    own_server: OwnServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The server stops mid-run and starts again: the input reconnects and every one of the
    1,000 messages is stored."""
    name = unique(request)
    out = tmp_path / "out.jsonl"
    entry = (
        f"{{type: nats, url: '{own_server.url}', jetstream: true, subject: '{name}.in', stream: {name}, "
        "create: true, batch: 50, reconnect_wait: 0.1, ack_wait: 2}"
    )
    async with engine_from(tmp_path, input_pattern(name, entry, out)) as engine:
        client = await nats.connect(own_server.url)
        js = client.jetstream()
        for i in range(COUNT):
            await js.publish(f"{name}.in", json.dumps({"n": i}).encode())
        await client.close()
        await eventually(lambda: len(lines(out)) >= 50, timeout=30)
        own_server.stop()
        await eventually(lambda: engine.health()["services"]["nats"] == "down", timeout=10)
        own_server.start()
        await eventually(lambda: len({v["n"] for v in lines(out)}) >= COUNT, timeout=60)
        await eventually(lambda: engine.health()["services"]["nats"] == "up", timeout=10)
    assert {v["n"] for v in lines(out)} == set(range(COUNT))


async def test_core_output_publishes_1000(nc: Client, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """tcp in -> core nats out, subject from the payload: a subscriber gets all 1,000."""
    name = unique(request)
    port = free_port()
    got: list[Msg] = []

    async def seen(msg: Msg) -> None:
        got.append(msg)

    await nc.subscribe(f"{name}.*", cb=seen)
    await nc.flush()
    entry = f"{{type: nats, subject: '{name}.{{payload.kind}}', payload_only: true}}"
    async with engine_from(tmp_path, output_pattern(name, port, entry)) as engine:
        await send_lines(port, [{"n": i, "kind": "a" if i % 2 else "b"} for i in range(COUNT)])
        await eventually(lambda: len(got) >= COUNT, timeout=30)
        await send_lines(port, [{"n": -1}])  # no `kind`: to the DLQ
        await eventually(lambda: engine.sqlite.dlq_depth(name) == 1, timeout=10)
    assert [json.loads(m.data)["n"] for m in got] == list(range(COUNT))
    assert {m.subject for m in got} == {f"{name}.a", f"{name}.b"}


async def test_jetstream_output_sets_msg_id_and_the_stream_drops_copies(
    nc: Client, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """tcp in -> JetStream out into a stream it creates: 1,000 stored, each with
    `Nats-Msg-Id` = its messageId; the same envelopes sent again are not stored twice."""
    name = unique(request)
    port = free_port()
    entry = f"{{type: nats, jetstream: true, subject: '{name}.out', stream: {name}, create: true}}"
    envelopes = [
        {
            "messageId": f"{name}-{i}",
            "messageType": "data",
            "timestamp": "2026-01-01T00:00:00Z",
            "payload": {"n": i},
        }
        for i in range(COUNT)
    ]
    try:
        async with engine_from(tmp_path, output_pattern(name, port, entry)):
            await send_lines(port, envelopes)
            await eventually(lambda: counted(name, f"{name}-out", "delivered") >= COUNT, timeout=30)
            await send_lines(port, envelopes[:100])
            await eventually(lambda: counted(name, f"{name}-out", "delivered") >= COUNT + 100, timeout=30)
        js = nc.jetstream()
        info = await js.stream_info(name)
        assert info.state.messages == COUNT
        first = await js.get_msg(name, 1)
        assert first.headers is not None
        assert first.headers["Nats-Msg-Id"] == f"{name}-0"
        assert json.loads(first.data or b"")["payload"] == {"n": 0}
    finally:
        await delete_stream(nc, name)


async def test_jetstream_output_doubles_nothing_when_the_server_restarts(
    own_server: OwnServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The server stops mid-run and starts again: batches without their PubAcks are sent
    again, and the stream holds each of the 1,000 messages exactly once."""
    name = unique(request)
    port = free_port()
    entry = (
        f"{{type: nats, url: '{own_server.url}', jetstream: true, subject: '{name}.out', "
        f"stream: {name}, create: true, reconnect_wait: 0.1, timeout: 2, payload_only: true}}"
    )
    async with engine_from(tmp_path, output_pattern(name, port, entry)):
        await send_lines(port, [{"n": i} for i in range(COUNT // 2)])
        await eventually(lambda: counted(name, f"{name}-out", "delivered") >= 1, timeout=20)
        own_server.stop()
        await send_lines(port, [{"n": i} for i in range(COUNT // 2, COUNT)])
        await asyncio.sleep(0.3)
        own_server.start()
        await eventually(lambda: counted(name, f"{name}-out", "delivered") >= COUNT, timeout=60)
    client = await nats.connect(own_server.url)
    try:
        js = client.jetstream()
        info = await js.stream_info(name)
        assert info.state.messages == COUNT
        sub = await js.subscribe(f"{name}.out", ordered_consumer=True)
        seen: list[int] = []
        for _ in range(COUNT):
            msg = await sub.next_msg(timeout=5)
            seen.append(json.loads(msg.data)["n"])
        assert sorted(seen) == list(range(COUNT))
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("{type: nats, subject: a, url: 'http://127.0.0.1:4222'}", "url"),
        ("{type: nats, subject: 'a..b'}", "subject"),
        ("{type: nats, subject: a, stream: s}", "stream"),
        ("{type: nats, subject: a, jetstream: true}", "stream"),
        ("{type: nats, subject: a, jetstream: true, stream: s, queue_group: g}", "queue_group"),
        ("{type: nats, subject: a, jetstream: true, stream: s, batch: 0}", "batch"),
        ("{type: nats, subject: a, jetstream: true, stream: 's.x'}", "stream"),
        ("{type: nats, subject: a, durable: d}", "durable"),
    ],
)
def test_bad_input_options_are_check_errors(entry: str, key: str, tmp_path: Path) -> None:
    """A wrong option is a `wireway check` error at its key, without a traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(input_pattern("bad", entry, tmp_path / "out.jsonl"))
    result = wireway("check", str(path))
    assert result.returncode == 1
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    assert any("bad.yaml:5 " in line and f".{key}" in line for line in text.splitlines()), text


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("{type: nats, subject: 'a.*'}", "subject"),
        ("{type: nats, subject: 'a.{payload.x'}", "subject"),
        ("{type: nats, subject: a, create: true}", "create"),
        ("{type: nats, subject: 'a.{payload.x}', jetstream: true, stream: s, create: true}", "create"),
        ("{type: nats, subject: a, timeout: 0}", "timeout"),
    ],
)
def test_bad_output_options_are_check_errors(entry: str, key: str, tmp_path: Path) -> None:
    """A wrong option is a `wireway check` error at its key, without a traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(output_pattern("bad", 7000, entry))
    result = wireway("check", str(path))
    assert result.returncode == 1
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    assert any("bad.yaml:7 " in line and f".{key}" in line for line in text.splitlines()), text


def test_bench_nats_reports_its_figures() -> None:
    """`wireway bench nats` end to end on tiny inputs: both rows of its table are there
    (the figures themselves are not checked)."""
    need_service("nats", 4222)
    result = wireway(
        "bench", "nats", "--messages", "500", "--latency-seconds", "1", "--rate", "200", timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "full speed" in result.stdout
    assert "200/s" in result.stdout


async def test_jetstream_input_keeps_the_publishers_msg_id(
    nc: Client, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A message published with `Nats-Msg-Id` gets it as its messageId, so a redelivered
    copy has the same one."""
    name = unique(request)
    out = tmp_path / "out.jsonl"
    entry = f"{{type: nats, jetstream: true, subject: '{name}.in', stream: {name}, create: true}}"
    text = input_pattern(name, entry, out).replace("payload_only: true", "payload_only: false")
    js = nc.jetstream()
    try:
        async with engine_from(tmp_path, text):
            await js.publish(f"{name}.in", b'{"n": 1}', headers={"Nats-Msg-Id": f"{name}-1"})
            await eventually(lambda: len(lines(out)) == 1)
        assert lines(out)[0]["messageId"] == f"{name}-1"
        assert lines(out)[0]["payload"] == {"n": 1}
    finally:
        await delete_stream(nc, name)
