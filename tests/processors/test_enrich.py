"""enrich: records from a CSV/JSON file, SQLite, PostgreSQL or Redis merged into payloads."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import free_port, need_service
from support import engine_from, eventually, written_lines
from wireway.envelope import Message
from wireway.errors import ConfigError
from wireway.processors.enrich import Enrich, EnrichConfig, LookupCache


def batch(*payloads: Any) -> list[Message]:
    return [
        Message(message_id=f"m{i}", timestamp="2026-01-01T00:00:00Z", payload=p)
        for i, p in enumerate(payloads)
    ]


def enrich(base: Path, **options: Any) -> Enrich:
    return Enrich(msgspec.convert(options, EnrichConfig), base_dir=base)


async def test_csv_file_merges_into_the_payload_root(tmp_path: Path) -> None:
    """Without target the row's columns join the payload; a miss passes unchanged by default."""
    (tmp_path / "devices.csv").write_text("id,site,floor\nd1,north,2\nd2,south,1\n")
    step = enrich(tmp_path, key="payload.dev", file={"path": "devices.csv"})
    result = await step.process(batch({"dev": "d1", "t": 5}, {"dev": "d9"}))
    assert [m.payload for m in result.passed] == [
        {"dev": "d1", "t": 5, "id": "d1", "site": "north", "floor": "2"},
        {"dev": "d9"},
    ]


async def test_json_file_under_a_target_and_miss_modes(tmp_path: Path) -> None:
    """A JSON object table, the record under `target`; a miss gets the default or fails."""
    (tmp_path / "sites.json").write_text(json.dumps({"1": {"name": "depot"}, "2": {"name": "yard"}}))
    table = {"path": "sites.json"}
    step = enrich(tmp_path, key="payload.site", file=table, target="site_info", on_miss="default", default={})
    result = await step.process(batch({"site": 1}, {"site": 3}))
    assert [m.payload["site_info"] for m in result.passed] == [{"name": "depot"}, {}]
    dlq = enrich(tmp_path, key="payload.site", file=table, target="a.b", on_miss="dlq")
    result = await dlq.process(batch({"site": 2}, {"site": 3}, {}))
    assert [m.payload for m in result.passed] == [{"site": 2, "a": {"b": {"name": "yard"}}}]
    reasons = {m.message_id: r for m, [r] in result.failed}
    assert reasons["m1"] == "enrich: no record for key 3"
    assert reasons["m2"].startswith("enrich: cannot evaluate key")


async def test_json_array_by_key_column(tmp_path: Path) -> None:
    """A JSON array of records is keyed by `key_column`."""
    (tmp_path / "t.json").write_text(json.dumps([{"code": "a", "v": 1}, {"code": "b", "v": 2}]))
    step = enrich(tmp_path, key="payload.c", file={"path": "t.json", "key_column": "code"}, target="x")
    result = await step.process(batch({"c": "b"}))
    assert result.passed[0].payload == {"c": "b", "x": {"code": "b", "v": 2}}


def test_options_are_checked(tmp_path: Path) -> None:
    """Exactly one table; a missing file is a config error at its key."""
    with pytest.raises(msgspec.ValidationError, match="exactly one table"):
        msgspec.convert({"key": "payload.k"}, EnrichConfig)
    with pytest.raises(ConfigError) as info:
        enrich(tmp_path, key="payload.k", file={"path": "nope.csv"})
    assert info.value.path == "file.path"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read") as info:
        enrich(tmp_path, key="payload.k", file={"path": "bad.json"})
    assert info.value.path == "file.path"


def test_cache_forgets_by_age_and_size() -> None:
    """Entries expire after ttl; beyond size the least recently used goes."""
    now = [0.0]
    cache = LookupCache(2, 10)
    cache.clock = lambda: now[0]
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)  # b was used least recently
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    now[0] = 11
    assert cache.get("a") is None


async def test_sqlite_lookups_are_cached(tmp_path: Path) -> None:
    """A SQLite query per key; a key asked again within the ttl is not read again."""
    db = tmp_path / "ref.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE devices (id TEXT PRIMARY KEY, site TEXT)")
        conn.execute("INSERT INTO devices VALUES ('d1', 'north')")
    sql = {"url": "ref.db", "query": "SELECT site FROM devices WHERE id = ?"}
    step = enrich(tmp_path, key="payload.dev", sql=sql, on_miss="dlq")
    result = await step.process(batch({"dev": "d1"}, {"dev": "d2"}))
    assert [m.payload for m in result.passed] == [{"dev": "d1", "site": "north"}]
    assert [r for _, [r] in result.failed] == ["enrich: no record for key 'd2'"]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE devices SET site = 'south'")
    result = await step.process(batch({"dev": "d1"}))
    assert result.passed[0].payload["site"] == "north"  # from the cache
    await step.stop()


async def test_postgresql_lookup() -> None:
    """A PostgreSQL query with $1; an unreachable server fails the messages with the reason."""
    need_service("PostgreSQL", 5432)
    table = f"enrich_{uuid.uuid4().hex[:8]}"
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text)")
        await conn.execute(f"INSERT INTO {table} VALUES (7, 'gate')")
        sql = {
            "url": "postgresql://postgres@127.0.0.1:5432/test",
            "query": f"SELECT name FROM {table} WHERE id = $1",
        }
        step = enrich(Path("."), key="payload.n", sql=sql, target="ref")
        result = await step.process(batch({"n": 7}, {"n": 8}))
        assert [m.payload for m in result.passed] == [{"n": 7, "ref": {"name": "gate"}}, {"n": 8}]
        await step.stop()
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()
    down = enrich(
        Path("."),
        key="payload.n",
        sql={"url": f"postgresql://postgres@127.0.0.1:{free_port()}/x", "query": "SELECT 1"},
    )
    result = await down.process(batch({"n": 1}))
    assert result.passed == []
    assert result.failed[0][1][0].startswith("enrich: lookup failed: PostgreSQL")


def pattern(port: int, out: Path, step: str) -> str:
    return f"""
pattern: {{name: enricher, type: streaming}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", ack: true}}
  output:
    - {{type: file, address: "{out}", format: jsonl, payload_only: true}}
processors:
  - enrich: {step}
"""


async def send(port: int, lines: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(lines)
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"ok")
    writer.close()


def rows(out: Path) -> list[dict[str, Any]]:
    return written_lines(out)


async def test_csv_file_changed_during_the_run_end_to_end(tmp_path: Path) -> None:
    """tcp -> enrich(file) -> file: a row changed in the CSV is used for the next messages."""
    port, out = free_port(), tmp_path / "out.jsonl"
    table = tmp_path / "devices.csv"
    table.write_text("id,site\nd1,north\n")
    step = '{key: "payload.dev", file: {path: devices.csv, check_every: 0}, target: device}'
    async with engine_from(tmp_path, pattern(port, out, step)):
        await send(port, b'{"dev": "d1", "n": 1}\n')
        await eventually(lambda: len(rows(out)) == 1)
        table.write_text("id,site\nd1,north-east\nd2,west\n")
        await send(port, b'{"dev": "d1", "n": 2}\n{"dev": "d2", "n": 3}\n')
        await eventually(lambda: len(rows(out)) == 3)
    assert [r["device"]["site"] for r in rows(out)] == ["north", "north-east", "west"]


async def test_sqlite_end_to_end(tmp_path: Path) -> None:
    """tcp -> enrich(sql: SQLite file) -> file; a miss goes to the DLQ."""
    port, out = free_port(), tmp_path / "out.jsonl"
    with sqlite3.connect(tmp_path / "ref.db") as conn:
        conn.execute("CREATE TABLE devices (id TEXT PRIMARY KEY, site TEXT, floor INTEGER)")
        conn.execute("INSERT INTO devices VALUES ('d1', 'north', 2)")
    step = '{key: "payload.dev", sql: {url: ref.db, query: "SELECT site, floor FROM devices WHERE id = ?"}, on_miss: dlq}'
    async with engine_from(tmp_path, pattern(port, out, step)) as engine:
        await send(port, b'{"dev": "d1"}\n{"dev": "d2"}\n')
        await eventually(lambda: len(rows(out)) == 1)
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("enricher") == 1)
    assert rows(out) == [{"dev": "d1", "site": "north", "floor": 2}]


async def test_redis_end_to_end(tmp_path: Path) -> None:
    """tcp -> enrich(redis GET of a JSON value, then HGETALL) -> file."""
    need_service("Redis", 6379)
    import redis.asyncio as aioredis

    prefix = f"wireway-test:{uuid.uuid4().hex[:8]}:"
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    await client.set(f"{prefix}d1", json.dumps({"site": "north"}))
    await client.hset(f"{prefix}h:d1", mapping={"owner": "ana"})
    try:
        port, out = free_port(), tmp_path / "out.jsonl"
        step = (
            f'{{key: "payload.dev", redis: {{prefix: "{prefix}"}}, target: ref}}\n'
            f'  - enrich: {{key: "payload.dev", redis: {{prefix: "{prefix}h:", command: hgetall}}}}'
        )
        async with engine_from(tmp_path, pattern(port, out, step)):
            await send(port, b'{"dev": "d1"}\n{"dev": "d2"}\n')
            await eventually(lambda: len(rows(out)) == 2)
        assert rows(out) == [{"dev": "d1", "ref": {"site": "north"}, "owner": "ana"}, {"dev": "d2"}]
    finally:
        await client.delete(f"{prefix}d1", f"{prefix}h:d1")
        await client.aclose()
