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
    - {{type: redis, name: stream, mode: stream, channel: "s-{tag}"}}
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
