"""The sensor application started before its PostgreSQL answers: it runs, reports the
storage down, holds readings back, and takes them once the database comes up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sensor_support import (
    PG,
    Broker,
    client,
    connected,
    mqtt_env,
    reading,
    sensor_engine,
    sensor_service,
    temp_schema,
)

from conftest import free_port, need_service
from support import eventually


class LateDoor:
    """A TCP port that refuses connections until `open()`, then forwards each one to
    the real PostgreSQL: a database that comes up after the application."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            t = asyncio.create_task(task)
            self.pipes.add(t)
            t.add_done_callback(self.pipes.discard)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self.pipes):
            t.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with temp_schema() as name:
        yield name


async def rows(schema: str) -> int:
    conn = await asyncpg.connect(PG, server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval("SELECT count(*) FROM sensor_readings"))
    finally:
        await conn.close()


async def test_storage_that_comes_up_late(tmp_path: Path, schema: str) -> None:
    need_service("mosquitto", 1883)
    door = LateDoor()
    prefix = f"t-late-{uuid.uuid4().hex[:6]}"
    env = {
        "WIREWAY_STORAGE": f"postgresql://postgres@127.0.0.1:{door.port}/test?search_path={schema}",
        **mqtt_env(prefix),
    }
    broker = Broker()
    try:
        async with sensor_engine(tmp_path, env=env) as engine, client(engine) as c:
            # up and answering, storage down: degraded (200, no restart), not ready (503)
            health = (await c.get("/health")).json()
            assert health["status"] == "degraded"
            assert health["services"]["storage"] == "down"
            ready = await c.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["ready"] is False
            assert any("storage not reached yet" in d for d in ready.json()["down"])
            # HTTP readings are refused for now, with Retry-After
            r = await c.post("/api/v1/sensor-data", json=reading("late-001"))
            assert r.status_code == 503
            assert int(r.headers["retry-after"]) >= 1
            # an MQTT reading is left unacknowledged: the broker keeps it
            await connected(engine)
            broker.publish(f"{prefix}/sensors/late-002/data", reading("late-002"))

            await door.open()  # the database comes up
            await eventually(lambda: engine.health()["services"]["storage"] == "up", timeout=40)
            assert (await c.get("/ready")).status_code == 200
            assert (await c.get("/health")).json()["status"] == "healthy"
            r = await c.post("/api/v1/sensor-data", json=reading("late-001"))
            assert r.status_code == 202, r.text

            async def both_stored() -> bool:
                return await rows(schema) == 6  # two readings, three sensors each

            for _ in range(200):
                if await both_stored():
                    break
                await asyncio.sleep(0.1)
            assert await rows(schema) == 6
            for _ in range(100):  # the device registry follows (its output lingers)
                listed = (await c.get("/api/v1/devices")).json()["devices"]
                if {"late-001", "late-002"} <= {d["device_id"] for d in listed}:
                    break
                await asyncio.sleep(0.1)
            assert {"late-001", "late-002"} <= {d["device_id"] for d in listed}
    finally:
        broker.close()
        await door.close()


async def test_storage_never_reached_keeps_the_process_up(tmp_path: Path) -> None:
    """A database that never answers: the HTTP server, /health and /metrics still work."""
    closed = free_port()
    env = {"WIREWAY_STORAGE": f"postgresql://postgres@127.0.0.1:{closed}/test"}
    async with sensor_engine(tmp_path, env=env) as engine:
        host, port = engine.http
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", trust_env=False) as c:
            assert (await c.get("/health")).json()["services"]["storage"] == "down"
            assert (await c.get("/metrics")).status_code == 200
            r = await c.get("/api/v1/devices", headers={"X-API-Key": "anything"})
            assert r.status_code == 503


async def test_a_storage_that_answers_but_cannot_be_migrated_stops_the_start(tmp_path: Path) -> None:
    """Reachable but unusable (here a table whose key is not `id`, which the migration
    needs) is not "down": the start fails with the database's own message."""
    import sqlite3

    from wireway.errors import WirewayError

    db = tmp_path / "odd.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE sensor_readings (reading_id INTEGER PRIMARY KEY, device_id TEXT, "
            "timestamp TEXT, received_at TEXT, sensor_type TEXT, data TEXT, metadata TEXT)"
        )
    with pytest.raises(WirewayError, match="id"):
        async with sensor_engine(tmp_path, env={"WIREWAY_STORAGE": f"sqlite:///{db}"}):
            pass
    # the application can start again in this process, on a usable storage
    (tmp_path / "next").mkdir()
    async with sensor_engine(tmp_path / "next") as engine, client(engine) as c:
        assert (await c.post("/api/v1/sensor-data", json=reading("after-1"))).status_code == 202


async def test_a_failing_load_is_retried_and_stop_still_works(tmp_path: Path, schema: str) -> None:
    """An output's state that fails to load once the storage answers is tried again with
    the connection; stopping is clean either way."""
    door = LateDoor()
    env = {"WIREWAY_STORAGE": f"postgresql://postgres@127.0.0.1:{door.port}/test?search_path={schema}"}
    calls = 0

    async def flaky_load() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("a row that does not parse")

    try:
        async with sensor_engine(tmp_path, env=env) as engine, client(engine) as c:
            await sensor_service(engine).when_ready(flaky_load)
            await door.open()
            await eventually(lambda: engine.health()["services"]["storage"] == "up", timeout=40)
            assert calls == 2
            assert (await c.post("/api/v1/sensor-data", json=reading("flaky-1"))).status_code == 202
    finally:
        await door.close()
