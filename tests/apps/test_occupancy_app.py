"""Occupancy in the running sensor application: gauges that go back to 0 when the hold
runs out, counts per location, the `sensor_occupancy: {hold_seconds: N}` step, occupied
seconds per day in the devices API, a device moved to another location, and live
`occupancy` messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sensor_support import ADMIN, client, reading, sensor_engine, sensor_service

from wireway.apps import builtin_path
from wireway.apps.sensor_ingest.migrations import tables
from wireway.config import load_pattern

STEP = "sensor_occupancy: {hold_seconds: 30}"
QUIET: dict[str, Any] = {"mq134": {"gas_concentration": 10, "unit": "ppm"}}  # neither presence nor motion


def hold(options: str) -> Callable[[str], str]:
    """A pattern edit setting the sensor_occupancy step's options."""

    def edit(text: str) -> str:
        assert STEP in text
        return text.replace(STEP, f"sensor_occupancy: {{{options}}}")

    return edit


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until the async `check()` is true (bounded in time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"condition not met in {timeout}s"
        await asyncio.sleep(0.05)


async def metrics_have(c: httpx.AsyncClient, *lines: str) -> bool:
    text = (await c.get("/metrics")).text.splitlines()
    return all(line in text for line in lines)


async def place(c: httpx.AsyncClient, device: str, location: str) -> None:
    r = await c.post(
        "/api/v1/devices/metadata", json={"device_id": device, "metadata": {"location": location}}
    )
    assert r.status_code == 200


def load(tmp_path: Path, options: str) -> tuple[object, list[str]]:
    text = hold(options)((builtin_path() / "sensors.yaml").read_text())
    path = tmp_path / "sensors.yaml"
    path.write_text(text)
    pattern, errors = load_pattern(path)
    step = None
    if pattern is not None:
        (step,) = [s.instance for s in pattern.steps if s.kind == "sensor_occupancy"]
    return step, [str(e) for e in errors]


def test_the_hold_option(tmp_path: Path) -> None:
    """`hold_seconds: N` sets the hold; without it the hold is 30 s."""
    for options, expected in (("hold_seconds: 30", 30.0), ("hold_seconds: 1.5", 1.5), ("", 30.0)):
        step, errors = load(tmp_path, options)
        assert not errors, (options, errors)
        assert step.hold_seconds == expected, options  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("hold_seconds: -1", "expected `float` > 0.0"),
        ("hold_seconds: 0", "expected `float` > 0.0"),
        ("hold_seconds: soon", "expected `float`, got `str`"),
        ("hold: 3", "hold: unknown key"),
    ],
)
def test_a_bad_hold_is_a_config_error_naming_its_path(tmp_path: Path, options: str, message: str) -> None:
    """file:line processors[i]...: message, as every other option error."""
    step, errors = load(tmp_path, options)
    assert step is None
    (error,) = errors
    assert error.startswith(f"{tmp_path / 'sensors.yaml'}:"), error
    assert "processors[" in error, error
    assert message in error, error


async def test_gauges_go_back_to_zero_when_the_hold_runs_out(tmp_path: Path) -> None:
    """occupancy{device_id,location} 1 -> 0 and occupancy_count{location} 2 -> 1 -> 0,
    with no reading after the hold: the app's periodic tick updates the gauges."""
    async with (
        sensor_engine(tmp_path, edit=hold("hold_seconds: 1")) as engine,
        client(engine) as c,
    ):
        assert sensor_service(engine).occupancy.hold_seconds == 1.0
        await place(c, "esp32-g1", "gauge-room")
        await place(c, "esp32-g2", "gauge-room")
        await place(c, "esp32-g3", "gauge-room")
        r = await c.post(
            "/api/v1/sensor-data/batch",
            json=[
                reading("esp32-g1"),
                reading("esp32-g2", pir={"motion_detected": True}),
                reading("esp32-g3", **QUIET),
            ],
        )
        assert r.status_code == 202
        await until(
            lambda: metrics_have(
                c,
                'occupancy{device_id="esp32-g1",location="gauge-room"} 1.0',
                'occupancy{device_id="esp32-g2",location="gauge-room"} 1.0',
                'occupancy{device_id="esp32-g3",location="gauge-room"} 0.0',
                'occupancy_count{location="gauge-room"} 2.0',
            )
        )

        # g2 keeps moving while g1's hold runs out: the count follows device by device
        async def keep_moving() -> None:
            for second in range(100):
                ts = f"2025-10-16T18:35:{second % 60:02d}.{second:03d}Z"
                await c.post(
                    "/api/v1/sensor-data", json=reading("esp32-g2", ts, pir={"motion_detected": True})
                )
                await asyncio.sleep(0.2)

        mover = asyncio.create_task(keep_moving())
        try:
            await until(
                lambda: metrics_have(
                    c,
                    'occupancy{device_id="esp32-g1",location="gauge-room"} 0.0',
                    'occupancy{device_id="esp32-g2",location="gauge-room"} 1.0',
                    'occupancy_count{location="gauge-room"} 1.0',
                )
            )
        finally:
            mover.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mover
        await until(
            lambda: metrics_have(
                c,
                'occupancy{device_id="esp32-g1",location="gauge-room"} 0.0',
                'occupancy{device_id="esp32-g2",location="gauge-room"} 0.0',
                'occupancy_count{location="gauge-room"} 0.0',
            )
        )


async def test_devices_api_daily_seconds_and_counts_per_location(tmp_path: Path) -> None:
    """GET /api/v1/devices/{id}: occupancy.daily (stored and running totals, last 30 days,
    most recent first); GET /api/v1/occupancy: occupied and total devices per location."""
    async with (
        sensor_engine(tmp_path, edit=hold("hold_seconds: 1")) as engine,
        client(engine) as c,
    ):
        db = sensor_service(engine).db
        assert db is not None
        today = datetime.now(UTC).date()
        yesterday, long_ago = today - timedelta(days=1), today - timedelta(days=40)
        await db.executemany(
            f"INSERT INTO {tables(db).occupancy_daily} (device_id, day, occupied_seconds)"
            " VALUES ($1, $2, $3)",
            [("esp32-d1", yesterday.isoformat(), 1234.5), ("esp32-d1", long_ago.isoformat(), 99.0)],
        )
        await place(c, "esp32-d1", "office")
        await place(c, "esp32-d2", "office")
        await place(c, "esp32-d3", "kitchen")  # registered, never reported
        r = await c.post(
            "/api/v1/sensor-data/batch", json=[reading("esp32-d1"), reading("esp32-d2", **QUIET)]
        )
        assert r.status_code == 202

        async def counted() -> bool:
            d = (await c.get("/api/v1/devices/esp32-d1")).json()
            return bool(d.get("reading_count") == 1 and d["occupancy"]["occupied"])

        await until(counted)
        body = (await c.get("/api/v1/occupancy")).json()
        assert body["timestamp"].endswith("Z")
        by_location = {x["location"]: x for x in body["locations"]}
        assert by_location["office"] == {"location": "office", "occupied": 1, "devices": 2}
        assert by_location["kitchen"] == {"location": "kitchen", "occupied": 0, "devices": 1}

        async def vacant() -> bool:
            d = (await c.get("/api/v1/devices/esp32-d1")).json()
            return d["occupancy"]["occupied"] is False

        await until(vacant)
        device = (await c.get("/api/v1/devices/esp32-d1")).json()
        # the existing fields are unchanged; `daily` is added
        assert set(device["occupancy"]) == {
            "occupied",
            "since",
            "occupied_seconds_today",
            "location",
            "daily",
        }
        assert device["occupancy"]["location"] == "office"
        daily = device["occupancy"]["daily"]
        assert [d["day"] for d in daily] == [today.isoformat(), yesterday.isoformat()]  # 40 days ago: out
        assert daily[0]["occupied_seconds"] == pytest.approx(1.0, abs=0.01)  # the hold counts
        assert daily[0]["occupied_seconds"] == device["occupancy"]["occupied_seconds_today"]
        assert daily[1] == {"day": yesterday.isoformat(), "occupied_seconds": 1234.5}
        office = {x["location"]: x for x in (await c.get("/api/v1/occupancy")).json()["locations"]}["office"]
        assert office == {"location": "office", "occupied": 0, "devices": 2}
        # the list keeps its shape (no per-day history there)
        listed = (await c.get("/api/v1/devices")).json()
        assert listed["count"] == len(listed["devices"])
        assert all("daily" not in d["occupancy"] for d in listed["devices"])
        async with client(engine, None) as anonymous:
            assert (await anonymous.get("/api/v1/occupancy")).status_code == 401


async def test_live_clients_get_occupied_then_vacant(tmp_path: Path) -> None:
    """A WebSocket client subscribed with "occupancy": true gets the change a real
    reading causes, then the vacancy when the hold runs out (no further reading)."""
    from websockets.asyncio.client import connect

    async with (
        sensor_engine(tmp_path, edit=hold("hold_seconds: 1")) as engine,
        client(engine) as c,
    ):
        await place(c, "esp32-w1", "porch")
        host, port = engine.http
        async with connect(f"ws://{host}:{port}/ws?api_key={ADMIN}") as ws:

            async def recv() -> dict[str, Any]:
                value = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert isinstance(value, dict)
                return value

            assert (await recv())["type"] == "connected"
            await ws.send(
                json.dumps({"type": "subscribe", "filters": {"device_id": "esp32-w1"}, "occupancy": True})
            )
            assert (await recv())["type"] == "subscribed"
            assert (await c.post("/api/v1/sensor-data", json=reading("esp32-w1"))).status_code == 202
            changes: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                while len(changes) < 2:
                    message = await recv()
                    if message["type"] == "occupancy":
                        changes.append(message["data"])
            assert [(e["device_id"], e["location"], e["occupied"]) for e in changes] == [
                ("esp32-w1", "porch", True),
                ("esp32-w1", "porch", False),
            ]
