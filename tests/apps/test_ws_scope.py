"""A device's credential on the sensor application's /ws sees its own device only
(issue 14 §3): its readings and its alerts, never another device's, never occupancy;
the admin key sees everything. The hub applies the scope before the client's own
subscription, so subscribing to everything does not widen it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from sensor_support import ADMIN, client, reading, sensor_engine, sensor_service
from websockets.asyncio.client import ClientConnection, connect

from support import eventually
from wireway.connectors.websocket import WebSocketHubs
from wireway.runtime.engine import Engine

SECRET = "scope-jwt-secret-0123456789abcdef012345"
OWN, OTHER = "esp32-own", "esp32-other"
GAS = {"mq134": {"gas_concentration": 900, "unit": "ppm"}}  # over the 500 ppm alert threshold
PRESENT = {"ld2410": {"presence": True, "distance": 150, "energy": 75}}  # an occupancy change
EVERYTHING = {"type": "subscribe", "filters": {}, "alerts": True, "occupancy": True}


def ws_url(engine: Engine, query: str = "") -> str:
    host, port = engine.http
    return f"ws://{host}:{port}/ws{query}"


async def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    value = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert isinstance(value, dict)
    return value


async def recv_until(ws: ClientConnection, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Every message up to and including the first for which `done` is true."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while True:
            got.append(await recv(ws))
            if done(got[-1]):
                return got


def reading_at(ts: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == "sensor-data" and m["data"]["timestamp"] == ts


def seen(messages: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(type, device_id) of each message."""
    return {(m["type"], m["data"].get("device_id")) for m in messages}


async def welcome(ws: ClientConnection) -> None:
    """Greeted (and authenticated), then subscribed to every kind of message."""
    assert (await recv(ws))["type"] == "connected"
    await ws.send(json.dumps(EVERYTHING))
    reply = await recv(ws)
    assert reply["type"] == "subscribed", reply


async def test_a_device_gets_only_its_own_readings_and_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device JWT (?token=) and a device key (first auth message) are admitted, each
    limited to its own device; the admin client beside them gets both devices, their
    alerts and occupancy changes."""
    monkeypatch.delenv("WIREWAY_AUTH", raising=False)
    async with sensor_engine(tmp_path, env={"WIREWAY_JWT_SECRET": SECRET}) as engine:
        app = sensor_service(engine)
        assert app.keys is not None
        _, other_key = await app.keys.create(OTHER)
        await app.keys.refresh()
        token = jwt.encode({"sub": OWN}, SECRET, algorithm="HS256")
        hubs = engine.service(WebSocketHubs)
        hub = hubs.get("/ws") if hubs is not None else None
        assert hub is not None
        async with (
            connect(ws_url(engine, f"?token={token}")) as own,
            connect(ws_url(engine)) as other,
            connect(ws_url(engine), additional_headers={"X-API-Key": ADMIN}) as admin,
        ):
            assert (await recv(other))["type"] == "connected"
            await other.send(json.dumps({"type": "auth", "api_key": other_key}))
            assert (await recv(other))["type"] == "authenticated"
            await other.send(json.dumps(EVERYTHING))
            assert (await recv(other))["type"] == "subscribed"
            await welcome(own)
            await welcome(admin)
            await eventually(lambda: hub.clients == 3)
            scopes = {s["id"]: s["scope"] for s in hub.stats()}
            assert sorted(map(str, scopes.values())) == sorted(
                [
                    "None",
                    str({"fields": {"device_id": OWN}, "kinds": ["alert", "sensor-data"]}),
                    str({"fields": {"device_id": OTHER}, "kinds": ["alert", "sensor-data"]}),
                ]
            )

            async with client(engine) as c:
                for device, ts, sensors in [
                    (OTHER, "2025-10-16T18:33:01Z", {**GAS, **PRESENT}),  # an alert for the other
                    (OWN, "2025-10-16T18:33:02Z", PRESENT),
                    (OWN, "2025-10-16T18:33:03Z", GAS),  # an alert for its own device
                    (OTHER, "2025-10-16T18:33:04Z", {"pir": {"motion_detected": True}}),
                    (OWN, "2025-10-16T18:33:05Z", {"pir": {"motion_detected": False}}),
                ]:
                    r = await c.post("/api/v1/sensor-data", json=reading(device, ts, **sensors))
                    assert r.status_code == 202, r.text

            mine = await recv_until(own, reading_at("2025-10-16T18:33:05Z"))
            assert seen(mine) == {("sensor-data", OWN), ("alert", OWN)}
            assert [m["data"]["timestamp"] for m in mine if m["type"] == "sensor-data"] == [
                "2025-10-16T18:33:02Z",
                "2025-10-16T18:33:03Z",
                "2025-10-16T18:33:05Z",
            ]
            (alert,) = [m["data"] for m in mine if m["type"] == "alert"]
            assert alert["rule"] == "high_gas_concentration"

            theirs = await recv_until(other, reading_at("2025-10-16T18:33:04Z"))
            assert seen(theirs) == {("sensor-data", OTHER), ("alert", OTHER)}

            everything = await recv_until(admin, reading_at("2025-10-16T18:33:05Z"))
            assert seen(everything) == {
                ("sensor-data", OWN),
                ("sensor-data", OTHER),
                ("alert", OWN),
                ("alert", OTHER),
                ("occupancy", OWN),
                ("occupancy", OTHER),
            }

            # subscribing to the other device does not widen the scope: nothing arrives
            # before the answer to a ping sent after the next readings were published
            await own.send(json.dumps({"type": "subscribe", "filters": {"device_id": OTHER}, "alerts": True}))
            assert (await recv(own))["type"] == "subscribed"
            async with client(engine) as c:
                r = await c.post("/api/v1/sensor-data", json=reading(OTHER, "2025-10-16T18:33:06Z", **GAS))
                assert r.status_code == 202, r.text
            await recv_until(admin, reading_at("2025-10-16T18:33:06Z"))  # published by now
            await own.send(json.dumps({"type": "ping"}))
            assert (await recv(own))["type"] == "pong"
