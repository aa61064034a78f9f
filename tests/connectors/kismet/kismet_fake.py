"""A fake Kismet server for the tests: a Starlette app served by uvicorn on loopback.

It implements what the kismet input uses, with the request and response shapes of
Kismet 2025-09-R1 (kismetwireless/kismet: devicetracker.cc for
`/devices/last-time/:timestamp/devices`, which returns the devices whose last_time is
*above* the timestamp, a negative one counting back from the server's now;
trackedelement.cc for the `fields` simplification, where a path's value comes back
under its new name or the last part of its path, and a path a device lacks comes back
as 0; eventbus.cc for `/eventbus/events.ws`, where `{"SUBSCRIBE": topic}` subscribes
and each event is a text frame `{topic: content}`; system_monitor.cc for
`/system/timestamp.json`; and the docs' logins: the `KISMET` cookie or URI parameter
holds a session or API token, or HTTP basic authentication; 401 otherwise). The
command dictionary is read from the form variable `json` or from a JSON body, as
Kismet does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from conftest import free_port

START = 1764806400  # the fake's clock at the start: 2025-12-04T00:00:00Z


def mac_of(i: int) -> str:
    return ":".join(f"{(i >> s) & 0xFF:02X}" for s in (40, 32, 24, 16, 8, 0))


def access_point(i: int, *, last_time: int, ssid: str | None = None, rssi: int = -60) -> dict[str, Any]:
    """A Wi-Fi access point's device record, as Kismet holds it (a subset of its fields)."""
    name = ssid if ssid is not None else f"net-{i}"
    lat, lon = 52.0 + i * 1e-4, 4.0 + i * 1e-4
    return {
        "kismet.device.base.key": f"4202770D00000000_{i:012X}",
        "kismet.device.base.macaddr": mac_of(i),
        "kismet.device.base.phyname": "IEEE802.11",
        "kismet.device.base.name": name,
        "kismet.device.base.commonname": name,
        "kismet.device.base.type": "Wi-Fi AP",
        "kismet.device.base.crypt": "WPA2 WPA2-PSK AES-CCMP",
        "kismet.device.base.channel": "6",
        "kismet.device.base.frequency": 2437000,
        "kismet.device.base.manuf": "Unknown",
        "kismet.device.base.first_time": START - 100,
        "kismet.device.base.last_time": last_time,
        "kismet.device.base.packets.total": i,
        "kismet.device.base.signal": {
            "kismet.common.signal.type": "dbm",
            "kismet.common.signal.last_signal": rssi,
            "kismet.common.signal.min_signal": rssi - 10,
            "kismet.common.signal.max_signal": rssi + 5,
        },
        "kismet.device.base.location": {
            "kismet.common.location.loc_fix": 3,
            "kismet.common.location.last": {
                "kismet.common.location.geopoint": [lon, lat],
                "kismet.common.location.alt": 12.5,
                "kismet.common.location.fix": 3,
                "kismet.common.location.time_sec": last_time,
                "kismet.common.location.time_usec": 0,
            },
        },
        "dot11.device": {
            "dot11.device.last_beaconed_ssid_record": {
                "dot11.advertisedssid.ssid": name,
                "dot11.advertisedssid.crypt_string": "WPA2-PSK",
                "dot11.advertisedssid.channel": "6",
            },
        },
    }


def simplify(record: dict[str, Any], fields: list[Any]) -> dict[str, Any]:
    """Kismet's field simplification: each path's value under its new name or the last
    part of its path; 0 for a path the record lacks."""
    out: dict[str, Any] = {}
    for field in fields:
        path, name = (field[0], field[1]) if isinstance(field, list) else (field, None)
        value: Any = record
        for part in path.split("/"):
            value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                value = 0
                break
        out[name or path.split("/")[-1]] = value
    return out


class FakeKismet:
    """The fake server. `devices` by key (full records); `requests` records each device
    request as (path, command, headers); `token`, `username` and `password` are what
    it accepts; `timestamp_status` is the status /system/timestamp.json answers."""

    def __init__(
        self, *, token: str = "secret-token", username: str = "kismet", password: str = "pw"
    ) -> None:
        self.devices: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.token, self.username, self.password = token, username, password
        self.now = float(START)
        self.timestamp_status = 200
        self.sockets: dict[WebSocket, set[str]] = {}
        self.refused = 0  # requests answered 401
        self.port = free_port()
        app = Starlette(
            routes=[
                Route("/devices/last-time/{ts}/devices.json", self.last_time, methods=["GET", "POST"]),
                Route("/system/timestamp.json", self.timestamp, methods=["GET", "POST"]),
                WebSocketRoute("/eventbus/events.ws", self.eventbus),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off")
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(200):
            if self.server.started:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("the fake Kismet did not start")

    async def stop(self) -> None:
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)

    def add(self, *records: dict[str, Any]) -> None:
        for record in records:
            self.devices[record["kismet.device.base.key"]] = record

    def authorized(self, headers: Any, cookies: dict[str, str], query: Any) -> bool:
        if cookies.get("KISMET") == self.token or query.get("KISMET") == self.token:
            return True
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return bool(headers.get("authorization") == f"Basic {expected}")

    async def last_time(self, request: Request) -> Response:
        if not self.authorized(request.headers, request.cookies, request.query_params):
            self.refused += 1
            return PlainTextResponse("Login required\n", status_code=401)
        command: dict[str, Any] = {}
        if request.method == "POST":
            body = await request.body()
            if request.headers.get("content-type", "").startswith("application/json"):
                command = json.loads(body)
            else:  # x-www-form-urlencoded
                raw = parse_qs(body.decode()).get("json")
                command = json.loads(raw[0]) if raw else {}
        self.requests.append((request.url.path, command, dict(request.headers)))
        ts = int(request.path_params["ts"])
        if ts < 0:
            ts = int(self.now) + ts
        found = [d for d in self.devices.values() if d["kismet.device.base.last_time"] > ts]
        fields = command.get("fields")
        return JSONResponse([simplify(d, fields) if fields else d for d in found])

    async def timestamp(self, request: Request) -> Response:
        if not self.authorized(request.headers, request.cookies, request.query_params):
            self.refused += 1
            return PlainTextResponse("Login required\n", status_code=401)
        if self.timestamp_status != 200:
            return PlainTextResponse("unavailable\n", status_code=self.timestamp_status)
        sec = int(self.now)
        usec = int((self.now - sec) * 1e6)
        return JSONResponse({"kismet.system.timestamp.sec": sec, "kismet.system.timestamp.usec": usec})

    async def eventbus(self, ws: WebSocket) -> None:
        if not self.authorized(ws.headers, ws.cookies, ws.query_params):
            self.refused += 1
            await ws.close()  # before accept: the handshake is refused
            return
        await ws.accept()
        topics: set[str] = set()
        self.sockets[ws] = topics
        try:
            while True:
                command = json.loads(await ws.receive_text())
                if "SUBSCRIBE" in command:
                    topics.add(command["SUBSCRIBE"])
                if "UNSUBSCRIBE" in command:
                    topics.discard(command["UNSUBSCRIBE"])
        except WebSocketDisconnect:
            pass
        finally:
            self.sockets.pop(ws, None)

    def subscribed(self) -> set[str]:
        return {topic for topics in self.sockets.values() for topic in topics}

    async def publish(self, topic: str, content: Any) -> int:
        """Send an event to every socket subscribed to its topic; how many got it."""
        sent = 0
        for ws, topics in list(self.sockets.items()):
            if topic in topics:
                await ws.send_text(json.dumps({topic: content}))
                sent += 1
        return sent

    async def drop_sockets(self) -> None:
        """Close every eventbus socket (they no longer count as subscribed at once)."""
        for ws in list(self.sockets):
            self.sockets.pop(ws, None)
            with contextlib.suppress(Exception):
                await ws.close()
