"""The nats input and output against the local NATS server on 127.0.0.1:4222
(JetStream on).

Every test uses its own subjects, streams and consumers, named from the test and a
random part, and deletes its streams at the end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats_helpers import (
    COUNT,
    counted,
    delete_stream,
    input_pattern,
    lines,
    output_pattern,
    send_lines,
    unique,
)

from conftest import free_port, need_service
from support import Sink, engine_from, eventually


@pytest.fixture
async def nc() -> AsyncIterator[Client]:
    need_service("nats", 4222)
    client = await nats.connect("nats://127.0.0.1:4222")
    try:
        yield client
    finally:
        await client.close()


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


@pytest.mark.slow
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
