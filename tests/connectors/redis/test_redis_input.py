"""The redis input against the real Redis: list, pubsub and streams modes, lost
connections, crash leftovers, max_deliver and malformed values to the DLQ."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from conftest import free_port, need_service
from support import engine_from, eventually, written_lines
from wireway.envelope import stable_id
from wireway.runtime.dlq import DlqAdmin
from wireway.runtime.engine import Engine

COUNT = 1000
FAST = "reconnect_min: 0.05, reconnect_max: 0.2"


@pytest.fixture
async def client(request: pytest.FixtureRequest) -> AsyncIterator[aioredis.Redis]:
    """The test's own client; every key the test made (under its `tag`) is deleted after."""
    need_service("redis", 6379)
    redis = aioredis.from_url("redis://127.0.0.1:6379/0")
    test = re.sub(r"[^A-Za-z0-9_]", "-", request.node.name)
    redis.tag = f"wwtest-{test}-{uuid.uuid4().hex[:8]}"  # type: ignore[attr-defined]
    try:
        yield redis
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{redis.tag}*")]  # type: ignore[attr-defined]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def tag_of(client: aioredis.Redis) -> str:
    return str(client.tag)  # type: ignore[attr-defined]


def pattern(name: str, entry: str, out: Path) -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: '{out}', payload_only: true}}
"""


def lines_of(path: Path) -> list[Any]:
    return written_lines(path)


def numbers(path: Path) -> list[int]:
    return [v["n"] for v in lines_of(path) if isinstance(v, dict) and "n" in v]


def values(start: int = 0, stop: int = COUNT) -> list[bytes]:
    return [json.dumps({"n": i}).encode() for i in range(start, stop)]


def dead_letters(tmp: Path, name: str) -> list[dict[str, Any]]:
    """Each dead letter with its envelope (`message`)."""
    with DlqAdmin(tmp / "data" / "buffer.db") as admin:
        rows = [admin.show(row["message_id"]) for row in admin.list(name)]
    return [row for row in rows if row is not None]


async def settled(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until the async `check()` is true (acknowledgements follow the outputs' writes)."""
    for _ in range(int(timeout / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout}s")


async def drained(client: aioredis.Redis, *lists: str) -> bool:
    return all([await client.llen(name) == 0 for name in lists])


async def acknowledged(client: aioredis.Redis, key: str, group: str) -> bool:
    return bool((await client.xpending(key, group))["pending"] == 0)


def input_state(engine: Engine) -> str:
    return str(engine.status()["patterns"][0]["inputs"][0]["state"])


async def kill_input_connections(client: aioredis.Redis, name: str) -> int:
    """CLIENT KILL by id every connection of the input (named `wireway:<input>`), waiting
    briefly for one while the input is between connections."""
    for _ in range(100):
        killed = 0
        for entry in await client.client_list():
            if entry.get("name") == f"wireway:{name}.redis":
                killed += await client.client_kill_filter(_id=entry["id"])
        if killed:
            return killed
        await asyncio.sleep(0.02)
    return 0


async def test_list_mode_carries_messages_in_order(client: aioredis.Redis, tmp_path: Path) -> None:
    """1,000 items LPUSHed before and after the start arrive in order; both the list and
    the processing list end empty."""
    key, out = tag_of(client), tmp_path / "out.jsonl"
    await client.lpush(key, *values(0, 500))
    entry = f"{{type: redis, mode: list, key: {key}}}"
    async with engine_from(tmp_path, pattern("list", entry, out)) as engine:
        await client.lpush(key, *values(500, COUNT))
        await eventually(lambda: len(numbers(out)) >= COUNT, timeout=30)
        assert input_state(engine) == "running"
        assert engine.health()["services"]["list.redis"] == "up"
        await settled(lambda: drained(client, key, f"{key}:processing"))
    assert numbers(out) == list(range(COUNT))


async def test_pubsub_mode_carries_channels_and_patterns(client: aioredis.Redis, tmp_path: Path) -> None:
    """1,000 messages published on a channel arrive in order, and one on a channel that a
    pattern matches."""
    tag, out = tag_of(client), tmp_path / "out.jsonl"
    entry = f"{{type: redis, mode: pubsub, channels: [{tag}], patterns: ['{tag}.p.*']}}"
    async with engine_from(tmp_path, pattern("pubsub", entry, out)):
        pipe = client.pipeline(transaction=False)
        for value in values():
            pipe.publish(tag, value)
        await pipe.execute()
        await client.publish(f"{tag}.p.x", json.dumps({"pattern": True}))
        await eventually(lambda: len(lines_of(out)) >= COUNT + 1, timeout=30)
    assert numbers(out) == list(range(COUNT))
    assert {"pattern": True} in lines_of(out)


async def test_streams_mode_carries_messages_and_acknowledges(client: aioredis.Redis, tmp_path: Path) -> None:
    """1,000 entries added before and after the start (start_id 0) arrive in order and are
    all acknowledged; a redelivery would keep the messageId (derived from the entry id)."""
    key, out = tag_of(client), tmp_path / "out.jsonl"
    for value in values(0, 500):
        await client.xadd(key, {"data": value})
    entry = f"{{type: redis, mode: streams, key: {key}, group: g, consumer: c, start_id: '0'}}"
    async with engine_from(tmp_path, pattern("streams", entry, out)):
        pipe = client.pipeline(transaction=False)
        for value in values(500, COUNT):
            pipe.xadd(key, {"data": value})
        await pipe.execute()
        await eventually(lambda: len(numbers(out)) >= COUNT, timeout=30)
        await settled(lambda: acknowledged(client, key, "g"))
    assert numbers(out) == list(range(COUNT))


@pytest.mark.parametrize("mode", ["list", "streams"])
async def test_killed_connections_lose_and_double_nothing(
    mode: str, client: aioredis.Redis, tmp_path: Path
) -> None:
    """The input's connection is killed (CLIENT KILL ID) again and again while 1,000 items
    come in: each arrives exactly once, and nothing is left unacknowledged."""
    key, out = tag_of(client), tmp_path / "out.jsonl"
    name = f"kill-{mode}"
    entry = f"{{type: redis, mode: {mode}, key: {key}, batch_size: 20, {FAST}}}"
    async with engine_from(tmp_path, pattern(name, entry, out)) as engine:
        kills = 0
        for start in range(0, COUNT, 50):
            chunk = values(start, start + 50)
            if mode == "list":
                await client.lpush(key, *chunk)
            else:
                pipe = client.pipeline(transaction=False)
                for value in chunk:
                    pipe.xadd(key, {"data": value})
                await pipe.execute()
            await asyncio.sleep(0.01 * (start % 3))
            if start % 100 == 0:
                kills += await kill_input_connections(client, name)
        assert kills >= 5
        await eventually(lambda: len(numbers(out)) >= COUNT, timeout=30)
        await eventually(lambda: input_state(engine) == "running")
        if mode == "list":
            await settled(lambda: drained(client, key, f"{key}:processing"))
        else:
            await settled(lambda: acknowledged(client, key, "wireway"))
    assert sorted(numbers(out)) == list(range(COUNT))


async def test_list_leftovers_of_a_crash_come_first(client: aioredis.Redis, tmp_path: Path) -> None:
    """Items a crash left in the processing list (moved, never removed) are ingested at
    the next start, oldest first, before the list itself."""
    key, out = tag_of(client), tmp_path / "out.jsonl"
    processing = f"{key}:taken"
    await client.lpush(processing, *values(0, 300))  # as BLMOVE ... RIGHT LEFT left them
    await client.lpush(key, *values(300, COUNT))
    entry = f"{{type: redis, mode: list, key: {key}, processing: '{processing}'}}"
    async with engine_from(tmp_path, pattern("leftovers", entry, out)):
        await eventually(lambda: len(numbers(out)) >= COUNT, timeout=30)
        await settled(lambda: drained(client, processing))
    assert numbers(out) == list(range(COUNT))


async def test_streams_pending_entries_are_taken_up(client: aioredis.Redis, tmp_path: Path) -> None:
    """At start the consumer reads its own pending entries (a crash between read and
    XACK) and takes over the entries another consumer left idle past claim_idle."""
    key, out = tag_of(client), tmp_path / "out.jsonl"
    await client.xgroup_create(key, "g", "0", mkstream=True)
    for value in values():
        await client.xadd(key, {"data": value})
    await client.xreadgroup("g", "me", {key: ">"}, count=300)  # this consumer, before a crash
    await client.xreadgroup("g", "dead", {key: ">"}, count=300)  # another one that died
    await asyncio.sleep(0.3)
    entry = f"{{type: redis, mode: streams, key: {key}, group: g, consumer: me, claim_idle: 0.2}}"
    async with engine_from(tmp_path, pattern("pending", entry, out)):
        await eventually(lambda: len(numbers(out)) >= COUNT, timeout=30)
        await settled(lambda: acknowledged(client, key, "g"))
    assert sorted(numbers(out)) == list(range(COUNT))
    assert numbers(out)[:300] == list(range(300))  # its own first


async def test_streams_max_deliver_to_the_dlq(client: aioredis.Redis, tmp_path: Path) -> None:
    """An entry delivered more than max_deliver times goes to the DLQ with the reason and
    is acknowledged; one delivered less goes on."""
    key, out = tag_of(client), tmp_path / "out.jsonl"
    await client.xgroup_create(key, "g", "0", mkstream=True)
    poison = await client.xadd(key, {"data": json.dumps({"n": 0})})
    await client.xreadgroup("g", "me", {key: ">"}, count=1)
    for _ in range(2):  # two more deliveries (a crash each time)
        await client.xreadgroup("g", "me", {key: "0"}, count=1)
    await client.xadd(key, {"data": json.dumps({"n": 1})})
    await client.xreadgroup("g", "me", {key: ">"}, count=1)  # delivered once
    entry = f"{{type: redis, mode: streams, key: {key}, group: g, consumer: me, max_deliver: 3}}"
    async with engine_from(tmp_path, pattern("poison", entry, out)) as engine:
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("poison") == 1 and numbers(out) == [1])
        await settled(lambda: acknowledged(client, key, "g"))
    (letter,) = dead_letters(tmp_path, "poison")
    assert "delivered 4 times (max_deliver 3)" in letter["reason"]
    assert poison.decode() in letter["reason"]


@pytest.mark.parametrize("mode", ["list", "pubsub", "streams"])
async def test_malformed_json_to_the_dlq(mode: str, client: aioredis.Redis, tmp_path: Path) -> None:
    """A value that is not JSON goes to the DLQ with the reason; the others go on."""
    key, out = tag_of(client), tmp_path / "out.jsonl"
    where = f"channels: [{key}]" if mode == "pubsub" else f"key: {key}"
    entry = f"{{type: redis, mode: {mode}, {where}}}"
    items = [b'{"n": 0}', b"{not json", b'{"n": 1}']
    async with engine_from(tmp_path, pattern(f"bad-{mode}", entry, out)) as engine:
        for item in items:
            if mode == "list":
                await client.lpush(key, item)
            elif mode == "pubsub":
                await client.publish(key, item)
            else:
                await client.xadd(key, {"data": item})
        assert engine.sqlite is not None
        await eventually(lambda: numbers(out) == [0, 1] and engine.sqlite.dlq_depth(f"bad-{mode}") == 1)
    (letter,) = dead_letters(tmp_path, f"bad-{mode}")
    assert "invalid JSON" in letter["reason"]
    assert letter["message"]["payload"] == "{not json"


async def test_streams_fields(client: aioredis.Redis, tmp_path: Path) -> None:
    """`field` names the entry field; an entry without it goes to the DLQ; `whole_entry`
    takes the whole field map as the payload."""
    key, out = tag_of(client), tmp_path / "out.jsonl"
    other = f"{key}-whole"
    entries = (
        f"{{type: redis, mode: streams, key: {key}, field: body, start_id: '0'}}\n"
        f"    - {{type: redis, mode: streams, key: {other}, whole_entry: true, start_id: '0'}}"
    )
    await client.xadd(key, {"body": json.dumps({"n": 0})})
    await client.xadd(key, {"data": json.dumps({"n": 1})})
    await client.xadd(other, {"device": "d-1", "t": "21.5"})
    async with engine_from(tmp_path, pattern("fields", entries, out)) as engine:
        assert engine.sqlite is not None
        await eventually(lambda: len(lines_of(out)) == 2 and engine.sqlite.dlq_depth("fields") == 1)
    assert sorted(lines_of(out), key=str) == sorted([{"n": 0}, {"device": "d-1", "t": "21.5"}], key=str)
    (letter,) = dead_letters(tmp_path, "fields")
    assert "no `body` field" in letter["reason"]


async def test_unreachable_server_is_retried(client: aioredis.Redis, tmp_path: Path) -> None:
    """No server: the engine starts all the same, the input says `connecting` and /health
    `down`, and stops cleanly."""
    out = tmp_path / "out.jsonl"
    entry = f"{{type: redis, url: 'redis://127.0.0.1:{free_port()}/0', mode: list, key: k, {FAST}}}"
    async with engine_from(tmp_path, pattern("nowhere", entry, out)) as engine:
        assert input_state(engine) == "connecting"
        assert engine.health()["services"]["nowhere.redis"] == "down"


async def test_pubsub_resubscribes_after_a_lost_connection(client: aioredis.Redis, tmp_path: Path) -> None:
    """A killed subscriber connection comes back subscribed (what was published meanwhile
    is lost: at-most-once)."""
    tag, out = tag_of(client), tmp_path / "out.jsonl"
    entry = f"{{type: redis, mode: pubsub, channels: [{tag}], {FAST}}}"
    async with engine_from(tmp_path, pattern("resub", entry, out)) as engine:
        await client.publish(tag, json.dumps({"n": 0}))
        await eventually(lambda: numbers(out) == [0])
        assert await kill_input_connections(client, "resub") == 1
        await eventually(lambda: input_state(engine) == "running", timeout=5)

        async def through() -> bool:
            await client.publish(tag, json.dumps({"n": 1}))
            return 1 in numbers(out)

        await settled(through)
        assert engine.health()["services"]["resub.redis"] == "up"


async def test_stream_entries_keep_their_message_id(client: aioredis.Redis, tmp_path: Path) -> None:
    """A stream entry's messageId is derived from the stream and entry id (the same at a
    redelivery); an envelope in the entry keeps its own."""
    key, out = tag_of(client), tmp_path / "out.jsonl"
    plain = await client.xadd(key, {"data": json.dumps({"n": 0})})
    envelope = {"messageId": "m-1", "timestamp": "2026-01-01T00:00:00Z", "messageType": "data", "payload": {}}
    await client.xadd(key, {"data": json.dumps(envelope)})
    text = f"""
pattern: {{name: ids}}
interfaces:
  input:
    - {{type: redis, mode: streams, key: {key}, start_id: "0"}}
  output:
    - {{type: file, address: '{out}'}}
"""
    async with engine_from(tmp_path, text):
        await eventually(lambda: len(lines_of(out)) == 2)
    first, second = lines_of(out)
    assert first["messageId"] == stable_id("redis", key, plain.decode(), 0)
    assert second["messageId"] == "m-1"
