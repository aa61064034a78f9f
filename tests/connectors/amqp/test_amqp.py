"""The amqp input and output against the real RabbitMQ on 127.0.0.1:5672 (guest/guest).

Every test declares its own queues and exchanges, named from the test and a random
part, and deletes them at the end. A connection is killed from the server side with
`rabbitmqctl close_connection`, found by the connection name wireway gives it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

from conftest import free_port, need_service
from support import check_fails_at, engine_from, eventually, written_lines
from wireway.observability.metrics import REGISTRY

URL = "amqp://guest:guest@127.0.0.1:5672/"
COUNT = 1000


@pytest.fixture
async def channel() -> AsyncIterator[AbstractChannel]:
    need_service("rabbitmq", 5672)
    connection: AbstractConnection = await aio_pika.connect(URL)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


def unique(request: pytest.FixtureRequest) -> str:
    return f"ww-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


def lines(path: Path) -> list[Any]:
    return written_lines(path)


async def publish(channel: AbstractChannel, queue: str, bodies: list[bytes]) -> None:
    for body in bodies:
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)


async def drain(channel: AbstractChannel, queue: str, into: list[Any], stop: asyncio.Event) -> None:
    """Take what arrives on `queue` (acknowledging it) until `stop`."""
    q = await channel.get_queue(queue)
    async with q.iterator() as messages:
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(anext(messages), 0.2)
            except TimeoutError:
                continue
            into.append(json.loads(message.body))
            await message.ack()


async def kill_connection(name: str) -> None:
    """Close wireway's connection called `wireway <name>` from the broker's side."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", "list_connections", "--no-table-headers", "pid", "client_properties",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    pids = [line.split("\t")[0] for line in out.decode().splitlines() if f'"wireway {name}"' in line]
    assert pids, f"no connection named wireway {name}"
    for pid in pids:
        closer = await asyncio.create_subprocess_exec(
            "rabbitmqctl", "-q", "close_connection", pid, "test kill", stdout=asyncio.subprocess.DEVNULL
        )
        await asyncio.wait_for(closer.wait(), 30)


def counted(pattern: str, component: str, outcome: str) -> float:
    labels = {"pattern": pattern, "component": component, "outcome": outcome}
    return REGISTRY.get_sample_value("wireway_messages_total", labels) or 0.0


def input_pattern(name: str, entry: str, out: Path, steps: str = "") -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
{steps}
"""


async def test_input_takes_1000_and_acknowledges_them(
    channel: AbstractChannel, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """1,000 messages of a declared quorum queue reach the file; the queue is empty after."""
    name = unique(request)
    out = tmp_path / "out.jsonl"
    entry = f"{{type: amqp, url: '{URL}', queue: {name}, declare: true, quorum: true, prefetch: 200}}"
    try:
        async with engine_from(tmp_path, input_pattern(name, entry, out)) as engine:
            await publish(channel, name, [json.dumps({"n": i}).encode() for i in range(COUNT)])
            await eventually(lambda: len(lines(out)) >= COUNT, timeout=30)
            assert engine.health()["services"]["amqp"] == "up"
            await eventually(lambda: counted(name, "ingest", "accepted") >= COUNT)
            await asyncio.sleep(0.2)  # the last ack on its way
            queue = await channel.declare_queue(name, passive=True)
            assert queue.declaration_result.message_count == 0
            assert queue.declaration_result.consumer_count == 1
        assert [v["n"] for v in lines(out)] == list(range(COUNT))
    finally:
        await channel.queue_delete(name)


async def test_dead_letters_go_to_the_dlq_and_the_dead_letter_exchange(
    channel: AbstractChannel, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Invalid JSON and a record `validate` refuses land in wireway's DLQ and, rejected
    with requeue=false, in the queue's dead-letter exchange; the good one is stored."""
    name = unique(request)
    dlx = f"{name}-dlx"
    await channel.declare_exchange(dlx, "fanout", durable=False, auto_delete=True)
    parked = await channel.declare_queue(f"{name}-parked", exclusive=True)
    await parked.bind(dlx)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["n"]}))
    out = tmp_path / "out.jsonl"
    entry = f"{{type: amqp, queue: {name}, declare: true, dead_letter_exchange: {dlx}}}"
    steps = f"processors:\n  - validate: {{schema: '{schema}'}}"
    try:
        async with engine_from(tmp_path, input_pattern(name, entry, out, steps)) as engine:
            await publish(channel, name, [b"{not json", b'{"m": 1}', b'{"n": 7}'])
            await eventually(lambda: len(lines(out)) == 1)
            await eventually(lambda: engine.sqlite.dlq_depth(name) == 2)
            got: list[Any] = []

            async def parked_count() -> int:
                while (message := await parked.get(fail=False)) is not None:
                    got.append(message.body)
                    await message.ack()
                return len(got)

            for _ in range(100):
                if await parked_count() >= 2:
                    break
                await asyncio.sleep(0.05)
            assert sorted(got) == [b'{"m": 1}', b"{not json"]
        assert lines(out) == [{"n": 7}]
    finally:
        await channel.queue_delete(name)


async def test_input_keeps_the_publishers_message_id(
    channel: AbstractChannel, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A delivery with the AMQP `message_id` property gets it as its messageId, so a
    redelivered copy has the same one."""
    name = unique(request)
    out = tmp_path / "out.jsonl"
    entry = f"{{type: amqp, queue: {name}, declare: true}}"
    text = input_pattern(name, entry, out).replace("payload_only: true", "payload_only: false")
    try:
        async with engine_from(tmp_path, text):
            message = aio_pika.Message(b'{"n": 1}', message_id=f"{name}-1")
            await channel.default_exchange.publish(message, routing_key=name)
            await eventually(lambda: len(lines(out)) == 1)
        assert lines(out)[0]["messageId"] == f"{name}-1"
        assert lines(out)[0]["payload"] == {"n": 1}
    finally:
        await channel.queue_delete(name)


async def test_input_loses_nothing_when_the_connection_is_killed(
    channel: AbstractChannel, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The broker closes wireway's connection mid-run: it reconnects and every one of
    the 1,000 messages is stored (redelivered ones may come twice)."""
    name = unique(request)
    out = tmp_path / "out.jsonl"
    entry = f"{{type: amqp, queue: {name}, declare: true, prefetch: 50, reconnect_min: 0.1}}"
    await channel.declare_queue(name, durable=True)
    try:
        async with engine_from(tmp_path, input_pattern(name, entry, out)) as engine:
            input_name = f"{name}.amqp"
            await publish(channel, name, [json.dumps({"n": i}).encode() for i in range(COUNT)])
            await eventually(lambda: len(lines(out)) >= 100, timeout=30)
            await kill_connection(input_name)
            await eventually(lambda: len({v["n"] for v in lines(out)}) >= COUNT, timeout=60)
            await eventually(lambda: engine.health()["services"]["amqp"] == "up", timeout=10)
        assert {v["n"] for v in lines(out)} == set(range(COUNT))
    finally:
        await channel.queue_delete(name)


async def test_input_starts_over_when_its_queue_is_deleted(
    channel: AbstractChannel, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The broker cancels the consumer of a deleted queue: the input reconnects, declares
    the queue again (`declare: true`) and goes on consuming."""
    name = unique(request)
    out = tmp_path / "out.jsonl"
    entry = f"{{type: amqp, queue: {name}, declare: true, reconnect_min: 0.1}}"
    try:
        async with engine_from(tmp_path, input_pattern(name, entry, out)):
            await publish(channel, name, [b'{"n": 1}'])
            await eventually(lambda: len(lines(out)) == 1)
            await channel.queue_delete(name)

            probe = await aio_pika.connect(URL)
            try:
                for _ in range(100):  # a failed passive declare closes its channel: one each
                    try:
                        queue = await (await probe.channel()).declare_queue(name, passive=True)
                        if queue.declaration_result.consumer_count:
                            break
                    except aio_pika.exceptions.ChannelClosed:
                        pass
                    await asyncio.sleep(0.1)
            finally:
                await probe.close()
            await publish(channel, name, [b'{"n": 2}'])
            await eventually(lambda: len(lines(out)) == 2)
        assert lines(out) == [{"n": 1}, {"n": 2}]
    finally:
        await channel.queue_delete(name)


def output_pattern(name: str, port: int, entry: str) -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{name: {name}-out, {entry.removeprefix("{")}
settings: {{retries: 1000, backoff_base: 0.05, backoff_max: 0.2}}
"""


async def send_lines(port: int, values: list[Any]) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(json.dumps(v).encode() + b"\n" for v in values))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_output_publishes_1000_to_a_quorum_queue_it_declares(
    channel: AbstractChannel, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """tcp in -> amqp out to an exchange, routing key from the payload, into a quorum
    queue the output declares and binds; every message is persistent with its id."""
    name = unique(request)
    port = free_port()
    entry = (
        f"{{type: amqp, exchange: {name}-x, declare_exchange: true, exchange_type: topic, "
        f"routing_key: 'dev.{{payload.device}}', queue: {name}, quorum: true, bind_key: 'dev.#', "
        "payload_only: true}"
    )
    got: list[Any] = []
    stop = asyncio.Event()
    try:
        async with engine_from(tmp_path, output_pattern(name, port, entry)):
            await send_lines(port, [{"n": i, "device": f"d{i % 3}"} for i in range(COUNT)])
            await eventually(lambda: counted(name, f"{name}-out", "delivered") >= COUNT, timeout=30)
        queue = await channel.declare_queue(name, passive=True)
        assert queue.declaration_result.message_count == COUNT
        message = await queue.get()
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.message_id
        assert message.routing_key == "dev.d0"
        await message.nack(requeue=True)
        reader = asyncio.create_task(drain(channel, name, got, stop))
        await eventually(lambda: len(got) >= COUNT, timeout=30)
        stop.set()
        await reader
        assert sorted(v["n"] for v in got) == list(range(COUNT))
        proc = await asyncio.create_subprocess_exec(
            "rabbitmqctl", "-q", "list_queues", "--no-table-headers", "name", "type",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        text, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert f"{name}\tquorum" in text.decode()
    finally:
        await channel.queue_delete(name)
        await channel.exchange_delete(f"{name}-x")


async def test_an_unroutable_message_is_retried_until_a_queue_takes_it(
    channel: AbstractChannel, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`mandatory`: a message no queue takes comes back and is retried, not lost; once a
    queue is bound it is delivered."""
    name = unique(request)
    port = free_port()
    exchange = await channel.declare_exchange(f"{name}-x", "direct", durable=False)
    entry = f"{{type: amqp, exchange: {name}-x, routing_key: k}}"
    try:
        async with engine_from(tmp_path, output_pattern(name, port, entry)) as engine:
            await send_lines(port, [{"n": 1}])
            await eventually(lambda: counted(name, f"{name}-out", "retry") >= 1, timeout=10)
            assert counted(name, f"{name}-out", "delivered") == 0
            queue = await channel.declare_queue(name, exclusive=True)
            await queue.bind(exchange, routing_key="k")
            await eventually(lambda: counted(name, f"{name}-out", "delivered") == 1, timeout=20)
            message = await queue.get()
            assert json.loads(message.body)["payload"] == {"n": 1}  # the whole envelope by default
            assert engine.sqlite.dlq_depth(name) == 0
    finally:
        await channel.exchange_delete(f"{name}-x")


async def test_output_loses_nothing_when_the_connection_is_killed(
    channel: AbstractChannel, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The broker closes the output's connection mid-run: the batch is retried on a new
    connection and all 1,000 messages reach the queue."""
    name = unique(request)
    port = free_port()
    entry = f"{{type: amqp, routing_key: {name}, queue: {name}, payload_only: true, reconnect_min: 0.1}}"
    got: list[Any] = []
    stop = asyncio.Event()
    try:
        async with engine_from(tmp_path, output_pattern(name, port, entry)):
            await send_lines(port, [{"n": i} for i in range(COUNT // 2)])
            await eventually(lambda: counted(name, f"{name}-out", "delivered") >= 1, timeout=20)
            await kill_connection(f"{name}-out")
            await send_lines(port, [{"n": i} for i in range(COUNT // 2, COUNT)])
            reader = asyncio.create_task(drain(channel, name, got, stop))
            await eventually(lambda: len({v["n"] for v in got}) >= COUNT, timeout=60)
            stop.set()
            await reader
        assert {v["n"] for v in got} == set(range(COUNT))
    finally:
        stop.set()
        await channel.queue_delete(name)


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("{type: amqp, queue: q, url: 'http://127.0.0.1'}", "url"),
        ("{type: amqp, queue: q, quorum: true}", "quorum"),
        ("{type: amqp, queue: ''}", "queue"),
        ("{type: amqp, queue: q, prefetch: 0}", "prefetch"),
        ("{type: amqp, queue: q, dead_letters: drop}", "dead_letters"),
        ("{type: amqp, queue: q, declare_exchange: true}", "declare_exchange"),
    ],
)
def test_bad_input_options_are_check_errors(entry: str, key: str, tmp_path: Path) -> None:
    """A wrong option is a `wireway check` error at its key, without a traceback."""
    check_fails_at(input_pattern("bad", entry, tmp_path / "out.jsonl"), tmp_path, 5, key)


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("{type: amqp, routing_key: 'a.{payload.x'}", "routing_key"),
        ("{type: amqp, routing_key: k, quorum: true}", "quorum"),
        ("{type: amqp, routing_key: k, bind_key: b}", "bind_key"),
        ("{type: amqp, routing_key: k, confirm_timeout: 0}", "confirm_timeout"),
        ("{type: amqp, routing_key: k, exchange_type: x}", "exchange_type"),
    ],
)
def test_bad_output_options_are_check_errors(entry: str, key: str, tmp_path: Path) -> None:
    """A wrong option is a `wireway check` error at its key, without a traceback."""
    check_fails_at(output_pattern("bad", 7000, entry), tmp_path, 7, key)
