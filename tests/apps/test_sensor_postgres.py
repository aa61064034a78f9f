"""The sensor application storing into the real PostgreSQL, in a schema of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sensor_support import PG, client, reading, sensor_engine, temp_schema

from support import eventually


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with temp_schema() as name:
        yield name


async def test_readings_land_in_postgres_once(tmp_path: Path, schema: str) -> None:
    """Rows in the team's table, one per sensor type; a redelivery makes no second row;
    the devices API and the readings API read back from PostgreSQL."""
    env = {"WIREWAY_STORAGE": f"{PG}?search_path={schema}"}
    conn = await asyncpg.connect(PG, server_settings={"search_path": schema})
    try:
        async with sensor_engine(tmp_path, env=env) as engine, client(engine) as c:
            assert (await c.post("/api/v1/sensor-data", json=reading())).status_code == 202
            batch = [reading("esp32-002", f"2025-10-16T18:40:{i:02d}Z") for i in range(10)]
            r = await c.post("/api/v1/sensor-data/batch", json=batch)
            assert [x["status"] for x in r.json()["results"]] == ["accepted"] * 10

            async def count() -> int:
                return int(await conn.fetchval("SELECT count(*) FROM sensor_readings"))

            for _ in range(200):
                if await count() == 33:
                    break
                await eventually(lambda: True)
            assert await count() == 33
            columns = {
                r["column_name"]: r["data_type"]
                for r in await conn.fetch(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = $1 AND table_name = 'sensor_readings'",
                    schema,
                )
            }
            assert columns["data"] == "jsonb"
            assert columns["timestamp"] == "timestamp with time zone"
            assert columns["metadata"] == "jsonb"
            # the same message again, as a broker redelivery would bring it
            row = await conn.fetchrow("SELECT message_id FROM sensor_readings LIMIT 1")
            from wireway.envelope import Message

            storage = engine.runners[0].routes[0]  # the first output is the storage
            stored = await conn.fetch(
                "SELECT * FROM sensor_readings WHERE message_id = $1", row["message_id"]
            )
            msg = Message(
                row["message_id"],
                "2025-10-16T18:33:58Z",
                {**reading(), "received_at": "2025-10-16T18:33:59Z", "device_metadata": {}},
            )
            await storage.output.write([msg])
            again = await conn.fetch("SELECT * FROM sensor_readings WHERE message_id = $1", row["message_id"])
            assert len(again) == len(stored)
            page = (await c.get("/api/v1/readings", params={"device_id": "esp32-002", "limit": 7})).json()
            assert len(page["readings"]) == 7
            assert page["next_cursor"]

            async def reading_count() -> object:  # the state output lingers 0.1 s
                return (await c.get("/api/v1/devices/esp32-002")).json().get("reading_count")

            for _ in range(100):
                if await reading_count() == 10:
                    break
                await asyncio.sleep(0.05)
            assert await reading_count() == 10
    finally:
        await conn.close()
