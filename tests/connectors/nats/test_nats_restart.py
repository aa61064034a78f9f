"""The nats input and output while their server stops and starts again: a nats-server
of the test's own on a free port, with its own JetStream store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest
from nats_helpers import COUNT, OwnServer, counted, input_pattern, lines, output_pattern, send_lines, unique

from conftest import free_port
from support import engine_from, eventually


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    server = OwnServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
