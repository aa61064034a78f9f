"""The sensor application's live-stream rules on the generic hub: `sensor_type`
trimming and the `alerts` / `occupancy` opt-ins (apps/sensor_ingest/live.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from support import base_url, engine_from, eventually
from wireway.apps.sensor_ingest import live
from wireway.connectors.websocket import Hub, WebSocketHubs
from wireway.runtime.engine import Engine

FULL = {
    "ld2410": {"presence": True, "distance": 150, "energy": 75},
    "pir": {"motion_detected": True},
    "mq134": {"gas_concentration": 250, "unit": "ppm"},
}


def pattern(path: str) -> str:
    return f"""
pattern: {{name: live, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - {{type: websocket, path: "{path}", kind: sensor-data}}
settings: {{buffer: memory}}
"""


def reading(device: str, sensors: dict[str, Any] | None = None, n: int = 0) -> dict[str, Any]:
    return {
        "device_id": device,
        "timestamp": "2025-10-16T18:33:58Z",
        "n": n,
        "sensors": FULL if sensors is None else sensors,
    }


def hub_of(engine: Engine, path: str) -> Hub:
    """The engine's hub of `path`."""
    hubs = engine.service(WebSocketHubs)
    hub = hubs.get(path) if hubs is not None else None
    assert hub is not None, f"no websocket output on {path}"
    return hub


def ws_url(engine: Engine, path: str) -> str:
    host, port = engine.http
    return f"ws://{host}:{port}{path}"


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    value = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert isinstance(value, dict)
    return value


async def recv_until(ws: ClientConnection, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Every message up to and including the first for which `done` is true."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while True:
            got.append(await recv(ws))
            if done(got[-1]):
                return got


async def post(engine: Engine, *values: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:
        r = await c.post("/ingest", json=list(values))
        assert r.status_code == 202, r.text


def is_rfc3339(text: str) -> bool:
    return text.endswith("Z")


def marker(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == "sensor-data" and m["data"].get("n") == n


async def test_sensor_type_filter_trims_sensors(tmp_path: Path) -> None:
    """A sensor_type filter passes readings carrying that sensor, trimmed to it."""
    path = "/ws-sensor-type"
    async with engine_from(tmp_path, pattern(path)) as engine:
        live.install(hub_of(engine, path), authenticate=None)
        async with connect(ws_url(engine, path)) as ws, connect(ws_url(engine, path)) as other:
            await recv(ws)
            await recv(other)
            await ws.send(json.dumps({"type": "subscribe", "filters": {"sensor_type": "pir"}}))
            await recv(ws)
            radar_only = {"ld2410": {"presence": False, "distance": 0, "energy": 0}}
            await post(
                engine,
                reading("esp32-001", n=1),
                reading("esp32-001", radar_only, n=2),
                reading("esp32-002", {"pir": {"motion_detected": False}}, n=3),
            )
            got = await recv_until(ws, marker(3))
            assert [m["data"]["n"] for m in got] == [1, 3]
            assert got[0]["data"]["sensors"] == {"pir": {"motion_detected": True}}
            assert got[0]["data"]["device_id"] == "esp32-001"
            # the other client still gets the untrimmed reading (a copy was trimmed)
            untrimmed = await recv_until(other, marker(1))
            assert untrimmed[-1]["data"]["sensors"] == FULL
            # two sensor types and a device filter together
            await ws.send(
                json.dumps(
                    {
                        "type": "subscribe",
                        "filters": {"sensor_type": ["pir", "mq134"], "device_id": "esp32-001"},
                    }
                )
            )
            await recv(ws)
            await post(engine, reading("esp32-002", n=4), reading("esp32-001", n=5))
            (last,) = await recv_until(ws, marker(5))
            assert last["data"]["sensors"] == {"pir": FULL["pir"], "mq134": FULL["mq134"]}


async def test_alerts_and_occupancy_only_for_clients_that_ask(tmp_path: Path) -> None:
    """alert/occupancy messages need alerts/occupancy: true; device filters still apply."""
    path = "/ws-opt-in"
    async with engine_from(tmp_path, pattern(path)) as engine:
        hub = hub_of(engine, path)
        live.install(hub, authenticate=None)
        async with (
            connect(ws_url(engine, path)) as plain,
            connect(ws_url(engine, path)) as watcher,
            connect(ws_url(engine, path)) as other_device,
        ):
            for ws in (plain, watcher, other_device):
                await recv(ws)
            await watcher.send(
                json.dumps(
                    {
                        "type": "subscribe",
                        "filters": {"sensor_type": "mq134"},
                        "alerts": True,
                        "occupancy": True,
                    }
                )
            )
            sub = await recv(watcher)
            assert sub["alerts"] is True
            assert sub["occupancy"] is True
            await other_device.send(
                json.dumps({"type": "subscribe", "filters": {"device_id": "esp32-009"}, "alerts": True})
            )
            await recv(other_device)
            await eventually(lambda: hub.clients == 3)
            alert = {"id": "A1", "rule": "high_gas_concentration", "device_id": "esp32-001"}
            occupancy = {"device_id": "esp32-001", "location": "lab", "occupied": True}
            assert hub.publish("alert", alert) == 1
            assert hub.publish("occupancy", occupancy) == 1
            await post(engine, reading("esp32-001", n=1))
            got = await recv_until(watcher, marker(1))
            assert [m["type"] for m in got] == ["alert", "occupancy", "sensor-data"]
            assert got[0]["data"] == alert
            assert is_rfc3339(got[0]["timestamp"])
            assert got[1]["data"] == occupancy
            assert list(got[2]["data"]["sensors"]) == ["mq134"]
            assert [m["type"] for m in await recv_until(plain, marker(1))] == ["sensor-data"]
            # esp32-009's client got neither the alert nor esp32-001's reading
            await post(engine, reading("esp32-009", n=2))
            assert [m["data"]["n"] for m in await recv_until(other_device, marker(2))] == [2]
