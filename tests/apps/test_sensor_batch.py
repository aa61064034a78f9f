"""The sensor application's batch route: per-reading answers, and duplicates in flight."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from sensor_support import client, reading, sensor_engine, sensor_service

REJECT = {"WIREWAY_UNKNOWN_DEVICES": "reject"}


async def register(c: httpx.AsyncClient, *devices: str) -> None:
    for device in devices:
        r = await c.post("/api/v1/devices/metadata", json={"device_id": device, "metadata": {}})
        assert r.status_code == 200, r.text


async def stored(c: httpx.AsyncClient, device: str) -> list[dict[str, Any]]:
    r = await c.get("/api/v1/readings", params={"device_id": device})
    assert r.status_code == 200, r.text
    readings: list[dict[str, Any]] = r.json()["readings"]
    return readings


async def until_stored(c: httpx.AsyncClient, device: str, count: int) -> None:
    """Wait (bounded) until `device` has `count` rows (one per sensor type)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(await stored(c, device)) < count:
        assert loop.time() < deadline, f"{device}: fewer than {count} rows after 10 s"
        await asyncio.sleep(0.05)


async def test_batch_with_an_unknown_device_under_reject(tmp_path: Path) -> None:
    """The unknown device's reading fails, the others are accepted and stored; none is
    dead-lettered (the client was told)."""
    async with sensor_engine(tmp_path, env=REJECT) as engine, client(engine) as c:
        await register(c, "esp32-001", "esp32-002")
        batch = [reading("esp32-001"), reading("stranger"), reading("esp32-002")]
        r = await c.post("/api/v1/sensor-data/batch", json=batch)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["message"] == "Batch processed"
        assert body["total"] == 3
        results = body["results"]
        assert [x["device_id"] for x in results] == ["esp32-001", "stranger", "esp32-002"]
        assert [x["status"] for x in results] == ["accepted", "failed", "accepted"]
        assert "unknown device" in results[1]["error"]
        assert "message_id" not in results[1]
        assert results[0]["message_id"]
        assert results[2]["message_id"]

        await until_stored(c, "esp32-001", 3)
        await until_stored(c, "esp32-002", 3)
        assert await stored(c, "stranger") == []
        devices = (await c.get("/api/v1/devices")).json()["devices"]
        assert "stranger" not in {d["device_id"] for d in devices}
        status = (await c.get("/api/v1/queue/status")).json()
        assert status["dlq_size"] == 0

        # refused, not remembered: once registered, the same reading is accepted
        await register(c, "stranger")
        again = await c.post("/api/v1/sensor-data/batch", json=[reading("stranger")])
        assert [x["status"] for x in again.json()["results"]] == ["accepted"]
        await until_stored(c, "stranger", 3)
    assert not sensor_service(engine).in_flight


async def test_batch_of_unknown_devices_only_under_reject(tmp_path: Path) -> None:
    """Every reading refused: still 202, each one failed, nothing stored."""
    async with sensor_engine(tmp_path, env=REJECT) as engine, client(engine) as c:
        batch = [reading("stranger"), reading("other")]
        r = await c.post("/api/v1/sensor-data/batch", json=batch)
        assert r.status_code == 202, r.text
        assert [x["status"] for x in r.json()["results"]] == ["failed", "failed"]
        await asyncio.sleep(0.2)
        assert await stored(c, "stranger") == []
        assert (await c.get("/api/v1/queue/status")).json()["dlq_size"] == 0


async def test_single_route_under_reject_is_still_400(tmp_path: Path) -> None:
    async with sensor_engine(tmp_path, env=REJECT) as engine, client(engine) as c:
        r = await c.post("/api/v1/sensor-data", json=reading("stranger"))
        assert r.status_code == 400
        assert r.json()["error"] == "Invalid sensor data"
        assert "unknown device" in r.json()["details"][0]
        assert (await c.get("/api/v1/queue/status")).json()["dlq_size"] == 0
        await register(c, "stranger")
        assert (await c.post("/api/v1/sensor-data", json=reading("stranger"))).status_code == 202
    assert not sensor_service(engine).in_flight


async def test_concurrent_identical_posts_one_accepted(tmp_path: Path) -> None:
    """Identical readings posted at the same time: one 202, every other one 409."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        for n in range(3):  # a few rounds, each with its own reading
            ts = f"2025-10-16T18:34:0{n}Z"
            answers = await asyncio.gather(
                *(c.post("/api/v1/sensor-data", json=reading(ts=ts)) for _ in range(4))
            )
            codes = sorted(a.status_code for a in answers)
            assert codes == [202, 409, 409, 409], [a.text for a in answers]
            for a in answers:
                if a.status_code == 409:
                    assert a.json() == {"error": "Duplicate reading", "device_id": "esp32-001"}
        await until_stored(c, "esp32-001", 9)
        await asyncio.sleep(0.2)
        assert len(await stored(c, "esp32-001")) == 9
        # over both routes: the batch's copy of a single post in flight is a duplicate
        ts = "2025-10-16T18:35:00Z"
        one, many = await asyncio.gather(
            c.post("/api/v1/sensor-data", json=reading(ts=ts)),
            c.post("/api/v1/sensor-data/batch", json=[reading(ts=ts)]),
        )
        statuses = [one.status_code == 202, many.json()["results"][0]["status"] == "accepted"]
        assert statuses.count(True) == 1, (one.text, many.text)
    assert not sensor_service(engine).in_flight


async def test_batch_with_the_same_reading_twice(tmp_path: Path) -> None:
    """The second copy inside one batch is a duplicate; a later batch's copy too."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        same = reading()
        batch = [same, dict(same), reading(ts="2025-10-16T18:34:00Z")]
        r = await c.post("/api/v1/sensor-data/batch", json=batch)
        assert r.status_code == 202, r.text
        results = r.json()["results"]
        assert [x["status"] for x in results] == ["accepted", "duplicate", "accepted"]
        assert results[1] == {"device_id": "esp32-001", "status": "duplicate"}
        await until_stored(c, "esp32-001", 6)
        again = await c.post("/api/v1/sensor-data/batch", json=[same])
        assert [x["status"] for x in again.json()["results"]] == ["duplicate"]
        assert (await c.post("/api/v1/sensor-data", json=same)).status_code == 409
        await asyncio.sleep(0.2)
        assert len(await stored(c, "esp32-001")) == 6
    assert not sensor_service(engine).in_flight


async def test_a_resend_while_the_first_attempt_fails_is_kept(tmp_path: Path) -> None:
    """The first attempt's buffer commit fails (503); a resend that arrived meanwhile
    waits for it and then keeps the reading itself (202), never a 409 for a reading that
    was not kept. The failure is injected into wireway's own buffer, once."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        store = engine.sqlite
        assert store is not None
        real = store.enqueue
        calls = 0

        async def failing_once(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                await asyncio.sleep(0.3)
                raise OSError("disk I/O error")
            return await real(*args, **kwargs)

        store.enqueue = failing_once  # type: ignore[method-assign]
        first = asyncio.create_task(c.post("/api/v1/sensor-data", json=reading("resend-1")))
        await asyncio.sleep(0.1)
        second = await c.post("/api/v1/sensor-data", json=reading("resend-1"))
        assert (await first).status_code == 503
        assert second.status_code == 202, second.text
        assert (await c.post("/api/v1/sensor-data", json=reading("resend-1"))).status_code == 409
        assert not sensor_service(engine).in_flight
