"""The `/webhook` WebSocket (subscribe, requestStatus, statusUpdate on a start, newDevice
and alert events at most 10 a second) and `/api/webhook/kismet-data` from a real
engine's kismet input reading the Kismet stand-in (JSON, CSV, 503 when it is gone)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from control_support import control, until
from websockets.asyncio.client import ClientConnection, connect

from conftest import free_port
from support import engine_from


async def frame(ws: ClientConnection, event: str, timeout: float = 10) -> dict[str, Any]:
    """The next frame of that event (others skipped), bounded in time."""
    async with asyncio.timeout(timeout):
        while True:
            got = json.loads(await ws.recv())
            if got["event"] == event:
                return got  # type: ignore[no-any-return]


def record(i: int) -> dict[str, Any]:
    return {
        "key": f"K{i}",
        "mac": f"02:00:00:00:00:{i:02X}",
        "type": "Wi-Fi AP",
        "last_time": 1_800_000_000 + i,
    }


async def test_subscribe_request_status_and_updates(tmp_path: Path) -> None:
    async with control(tmp_path) as c, connect(c.ws_url) as ws, c.client() as http:
        first = json.loads(await ws.recv())
        assert first["event"] == "statusUpdate"
        assert set(first["data"]) == {"gps", "kismet"}
        await ws.send(
            json.dumps({"event": "subscribe", "data": {"channels": ["status", "devices", "bogus"]}})
        )
        subscribed = await frame(ws, "subscribed")
        assert subscribed["data"]["channels"] == ["devices", "status"]
        await ws.send(json.dumps({"event": "requestStatus", "data": {"script": "gps"}}))
        asked = await frame(ws, "statusUpdate")
        assert asked["data"]["script"] == "gps"
        assert asked["data"]["status"]["running"] is False
        r = await http.post("/api/webhook/run-script", json={"script": "gps"})
        assert r.status_code == 200, r.text
        update = await frame(ws, "statusUpdate")
        assert update["data"]["script"] == "gps"
        assert update["data"]["status"] == "running"
        assert update["data"]["pid"] == r.json()["pid"]
        # the process dies on its own: the watcher tells the channel (the bridge may
        # outlive gpsd for a moment: "running" with its PID first)
        os.kill(r.json()["pid"], signal.SIGKILL)
        seen = []
        for _ in range(5):
            gone = await frame(ws, "statusUpdate")
            seen.append((gone["data"]["status"], gone["data"]["pid"]))
            if gone["data"]["status"] == "stopped":
                break
        assert seen[-1] == ("stopped", None), seen
        assert r.json()["pid"] not in [pid for _, pid in seen]
        await ws.send("not json")
        assert (await frame(ws, "error"))["data"]["message"]


async def test_events_are_throttled_per_client(tmp_path: Path) -> None:
    """35 new devices at once reach a subscriber, never more than 10 in a second; an
    unsubscribed client gets none."""
    async with control(tmp_path) as c, connect(c.ws_url) as ws, connect(c.ws_url) as quiet:
        await ws.send(json.dumps({"event": "subscribe", "data": {"channels": ["devices", "alerts"]}}))
        await frame(ws, "subscribed")
        c.board.devices("kismet", [record(i) for i in range(30)])
        c.board.alert("kismet", {"kismet.alert.class": "DEAUTHFLOOD", "kismet.alert.severity": 15})
        c.board.devices("kismet", [record(i) for i in range(35)])  # 30 known: 5 new
        seen: list[float] = []
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while len(events) < 36:
                got = json.loads(await ws.recv())
                if got["event"] in ("newDevice", "alert"):
                    events.append(got)
                    seen.append(time.monotonic())
        assert [e["data"]["mac"] for e in events if e["event"] == "newDevice"] == [
            record(i)["mac"] for i in range(35)
        ]
        (alert,) = [e for e in events if e["event"] == "alert"]
        assert alert["data"]["type"] == "DEAUTHFLOOD"
        assert alert["data"]["severity"] == "critical"
        for i in range(len(seen) - 10):
            assert seen[i + 10] - seen[i] > 0.9, "more than 10 events in a second"
        first = json.loads(await quiet.recv())
        assert first["event"] == "statusUpdate"
        with_nothing = asyncio.wait_for(quiet.recv(), 0.3)
        try:
            extra = await with_nothing
        except TimeoutError:
            extra = None
        assert extra is None


def kismet_standin(port: int, logs: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "wireway.apps.fieldkit.standins.kismet", "-c", "wlan9", "-p", str(logs)]
    env = {**os.environ, "KISMET_STANDIN_PORT": str(port)}
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)


async def test_kismet_data_from_the_engines_kismet_input(tmp_path: Path) -> None:
    port, listen = free_port(), free_port()
    text = f"""
pattern: {{name: kit-control}}
interfaces:
  input:
    - {{type: kismet, name: kismet, url: "http://127.0.0.1:{port}", interval: 0.2, health_interval: 0.2,
       max_backoff: 0.5}}
  output:
    - {{type: file, address: "{tmp_path / "devices.jsonl"}", payload_only: true}}
processors:
  - fieldkit_control: {{listen: "127.0.0.1:{listen}"}}
"""
    kismet = kismet_standin(port, tmp_path / "logs")
    try:
        async with engine_from(tmp_path, text):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listen}", trust_env=False) as http:

                async def devices() -> list[Any]:
                    r = await http.get("/api/webhook/kismet-data", params={"type": "devices", "limit": 5})
                    return r.json().get("data", {}).get("devices", []) if r.status_code == 200 else []

                async def devices_count(n: int) -> bool:
                    return len(await devices()) == n

                assert await until(lambda: devices_count(5))
                found = await devices()
                assert {"mac", "firstSeen", "lastSeen", "manufacturer", "type", "signal", "location"} <= set(
                    found[0]
                )
                every = (await http.get("/api/webhook/kismet-data")).json()
                assert every["success"] is True
                assert set(every["data"]) == {"devices", "networks", "alerts", "summary"}
                assert every["data"]["summary"]["totalNetworks"] == len(every["data"]["networks"]) > 0
                assert every["data"]["networks"][0]["bssid"]
                r = await http.get("/api/webhook/kismet-data", params={"format": "csv", "type": "networks"})
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/csv")
                rows = list(csv.DictReader(io.StringIO(r.text)))
                assert rows
                assert rows[0]["kind"] == "network"
                assert rows[0]["bssid"]
                kismet_data = "/api/webhook/kismet-data"
                old = await http.get(kismet_data, params={"type": "devices", "since": "2000-01-01T00:00:00Z"})
                assert old.json()["data"]["devices"]
                assert old.json()["data"]["summary"]["dataRange"]["start"] == "2000-01-01T00:00:00.000Z"
                future = await http.get(kismet_data, params={"type": "devices", "since": "4102444800"})
                assert future.json()["data"]["devices"] == []
                alerts = (await http.get(kismet_data, params={"type": "alerts"})).json()
                assert set(alerts["data"]) == {"alerts", "summary"}
                for params in ({"limit": "0"}, {"limit": "x"}, {"format": "xml"}, {"since": "yesterday"}):
                    refused = await http.get(kismet_data, params=params)
                    assert refused.status_code == 400, params
                    assert refused.json()["error"] == "VALIDATION_ERROR"
                bad = await http.get("/api/webhook/kismet-data", params={"type": "invalid", "limit": 5000})
                assert bad.status_code == 400
                assert bad.json()["error"] == "INVALID_TYPE"
                kismet.send_signal(signal.SIGTERM)
                kismet.wait(10)

                async def unavailable() -> bool:
                    r = await http.get("/api/webhook/kismet-data")
                    return r.status_code == 503 and r.json()["error"] == "KISMET_UNAVAILABLE"

                assert await until(unavailable)
    finally:
        kismet.kill()
        kismet.wait(10)
