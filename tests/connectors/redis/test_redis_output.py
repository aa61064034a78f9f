"""The redis output against the real Redis: pub/sub and streams."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from conftest import free_port, need_service
from support import engine_from, eventually


async def test_publish_and_stream(tmp_path: Path) -> None:
    """tcp in -> redis out: a subscriber gets each payload on its templated channel;
    stream mode keeps them."""
    need_service("redis", 6379)
    port, tag = free_port(), uuid.uuid4().hex[:8]
    text = f"""
pattern: {{name: to-redis}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{type: redis, name: pub, channel: "t-{tag}.{{payload.device}}"}}
    - {{type: redis, name: stream, mode: streams, channel: "s-{tag}"}}
"""
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    pubsub = client.pubsub()
    await pubsub.psubscribe(f"t-{tag}.*")
    try:
        async with engine_from(tmp_path, text) as engine:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b'{"device": "a", "v": 1}\n{"device": "b", "v": 2}\n{"v": 3}\n')
            await writer.drain()
            writer.close()
            got: list[tuple[str, dict[str, object]]] = []
            for _ in range(100):
                m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if m:
                    got.append((m["channel"].decode(), json.loads(m["data"])))
                if len(got) == 2:
                    break
            assert got == [(f"t-{tag}.a", {"device": "a", "v": 1}), (f"t-{tag}.b", {"device": "b", "v": 2})]
            assert engine.sqlite is not None
            await eventually(lambda: engine.sqlite.dlq_depth("to-redis") == 1)  # no device field
            entries = await client.xrange(f"s-{tag}")
            assert [json.loads(e[1][b"data"])["v"] for e in entries] == [1, 2, 3]
    finally:
        await pubsub.aclose()
        await client.delete(f"s-{tag}")
        await client.aclose()


async def send_lines(port: int, lines: list[bytes]) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(line + b"\n" for line in lines))
    await writer.drain()
    writer.close()


async def test_list_and_streams_modes(tmp_path: Path) -> None:
    """1,000 messages: list mode LPUSHes (or RPUSHes) each one; streams mode XADDs it in
    `field`, trimmed to about `maxlen`; `format: text` writes the payload as text."""
    need_service("redis", 6379)
    port, tag = free_port(), uuid.uuid4().hex[:8]
    text = f"""
pattern: {{name: to-redis-lists}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{type: redis, name: left, mode: list, channel: "l-{tag}"}}
    - {{type: redis, name: right, mode: list, push: rpush, channel: "r-{tag}"}}
    - {{type: redis, name: stream, mode: streams, channel: "s-{tag}", field: body, maxlen: 100}}
    - {{type: redis, name: words, mode: list, channel: "w-{tag}", format: text, when: "payload.n == 1"}}
"""
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    keys = [f"l-{tag}", f"r-{tag}", f"s-{tag}", f"w-{tag}"]
    try:
        async with engine_from(tmp_path, text):
            await send_lines(port, [json.dumps({"n": i}).encode() for i in range(1000)])

            async def written() -> bool:
                return bool(await client.llen(f"r-{tag}") == 1000 and await client.llen(f"l-{tag}") == 1000)

            for _ in range(200):
                if await written():
                    break
                await asyncio.sleep(0.05)
            assert await written()
        assert [json.loads(v)["n"] for v in await client.lrange(f"l-{tag}", 0, -1)] == list(
            range(999, -1, -1)
        )
        assert [json.loads(v)["n"] for v in await client.lrange(f"r-{tag}", 0, -1)] == list(range(1000))
        numbers = [json.loads(fields[b"body"])["n"] for _, fields in await client.xrange(f"s-{tag}")]
        assert 100 <= len(numbers) < 1000  # MAXLEN ~ trims whole nodes: about 100 kept
        assert numbers == list(range(1000 - len(numbers), 1000))
        assert await client.lrange(f"w-{tag}", 0, -1) == [b'{"n":1}']
    finally:
        await client.delete(*keys)
        await client.aclose()


async def test_list_out_to_list_in(tmp_path: Path) -> None:
    """A redis list written by one pattern is read by another, in order, exactly once."""
    need_service("redis", 6379)
    port, tag = free_port(), uuid.uuid4().hex[:8]
    out = tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: redis-queue}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
    - {{type: redis, mode: list, key: "q-{tag}"}}
  output:
    - {{type: redis, mode: list, channel: "q-{tag}", when: "source != 'redis-queue.redis'"}}
    - {{type: file, address: '{out}', payload_only: true, when: "source == 'redis-queue.redis'"}}
"""
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    try:
        async with engine_from(tmp_path, text):
            await send_lines(port, [json.dumps({"n": i}).encode() for i in range(1000)])
            await eventually(lambda: out.exists() and len(out.read_text().splitlines()) >= 1000, timeout=20)
        assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == list(range(1000))
    finally:
        await client.delete(f"q-{tag}", f"q-{tag}:processing")
        await client.aclose()
