"""A Kismet stand-in: the REST endpoints the `kismet` input reads
(`/system/timestamp.json`, `/devices/last-time/<ts>/devices.json` with Kismet's
`fields` simplification, the `/eventbus/events.ws` socket with an ALERT now and
then), and a WiGLE CSV log written row by row, as Kismet with `--override wardrive`.

Takes Kismet's arguments: `-c SOURCE` (the capture interface, shown in its data
sources), `-p DIR` / `--log-prefix DIR` (where the .wiglecsv goes, default `.`);
others ignored. The port is `KISMET_STANDIN_PORT` (default 2501, Kismet's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from wireway.apps.fieldkit.simulate import Device, Simulator, new_file
from wireway.apps.fieldkit.standins import exit_on_sigterm, now, say

NAME = "kismet"
ROWS_PER_SECOND = 5
ALERT_EVERY = 20  # seconds


def record(d: Device, first: float, last: float) -> dict[str, Any]:
    """A device as Kismet holds it (the fields the kismet input asks for)."""
    return {
        "kismet.device.base.key": "4202770D00000000_" + d.mac.replace(":", ""),
        "kismet.device.base.macaddr": d.mac,
        "kismet.device.base.name": d.ssid,
        "kismet.device.base.commonname": d.ssid,
        "kismet.device.base.type": "Wi-Fi AP",
        "kismet.device.base.phyname": "IEEE802.11",
        "kismet.device.base.channel": str(d.channel),
        "kismet.device.base.frequency": d.mhz * 1000,
        "kismet.device.base.crypt": d.auth,
        "kismet.device.base.manuf": "Unknown",
        "kismet.device.base.first_time": int(first),
        "kismet.device.base.last_time": int(last),
        "kismet.device.base.signal": {"kismet.common.signal.last_signal": d.rssi},
        "kismet.device.base.location": {
            "kismet.common.location.last": {
                "kismet.common.location.geopoint": [d.lon, d.lat],
                "kismet.common.location.alt": 53.5,
                "kismet.common.location.fix": 3,
            }
        },
        "dot11.device": {"dot11.device.last_beaconed_ssid_record": {"dot11.advertisedssid.ssid": d.ssid}},
    }


def simplify(full: dict[str, Any], fields: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in fields:
        path, name = (field[0], field[1]) if isinstance(field, list) else (field, None)
        value: Any = full
        for part in str(path).split("/"):
            value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                value = 0
                break
        out[name or str(path).split("/")[-1]] = value
    return out


class Standin:
    def __init__(self, sources: list[str], logs: Path) -> None:
        self.sources, self.logs = sources, logs
        self.simulator = Simulator(devices=30)
        self.first: dict[str, float] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.sockets: dict[WebSocket, set[str]] = {}

    def sight(self) -> str:
        """One row: the device it is about is seen now."""
        line = next(self.simulator.sightings())
        mac = line.split(",", 1)[0]
        d = next(x for x in self.simulator.devices if x.mac == mac)
        self.first.setdefault(mac, now())
        self.devices[mac] = record(d, self.first[mac], now())
        return line

    async def log_forever(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        path = new_file(self.logs)
        with path.open("w", encoding="ascii", newline="") as f:
            f.write(self.simulator.header())
            f.flush()
            say(NAME, f"logging to {path}")
            while True:
                for _ in range(ROWS_PER_SECOND):
                    f.write(self.sight())
                f.flush()
                await asyncio.sleep(1.0)

    async def alert_forever(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(ALERT_EVERY)
            n += 1
            mac = next(iter(self.devices), "00:00:00:00:00:00")
            alert = {
                "kismet.alert.hash": n,
                "kismet.alert.class": "DEAUTHFLOOD",
                "kismet.alert.header": "DEAUTHFLOOD",
                "kismet.alert.severity": 10,
                "kismet.alert.timestamp": now(),
                "kismet.alert.text": f"simulated deauthentication flood #{n}",
                "kismet.alert.source_mac": mac,
                "kismet.alert.dest_mac": "FF:FF:FF:FF:FF:FF",
                "kismet.alert.channel": "6",
            }
            for ws, topics in list(self.sockets.items()):
                if "ALERT" in topics:
                    with contextlib.suppress(Exception):
                        await ws.send_text(json.dumps({"ALERT": alert}))

    async def timestamp(self, request: Request) -> Response:
        t = now()
        return JSONResponse(
            {"kismet.system.timestamp.sec": int(t), "kismet.system.timestamp.usec": int(t % 1 * 1e6)}
        )

    async def last_time(self, request: Request) -> Response:
        command: dict[str, Any] = {}
        if request.method == "POST":
            body = await request.body()
            if request.headers.get("content-type", "").startswith("application/json"):
                command = json.loads(body or b"{}")
            else:
                raw = parse_qs(body.decode()).get("json")
                command = json.loads(raw[0]) if raw else {}
        ts = int(request.path_params["ts"])
        if ts < 0:
            ts = int(now()) + ts
        found = [d for d in self.devices.values() if d["kismet.device.base.last_time"] > ts]
        fields = command.get("fields")
        return JSONResponse([simplify(d, fields) if fields else d for d in found])

    async def eventbus(self, ws: WebSocket) -> None:
        await ws.accept()
        topics: set[str] = set()
        self.sockets[ws] = topics
        try:
            while True:
                command = json.loads(await ws.receive_text())
                if "SUBSCRIBE" in command:
                    topics.add(command["SUBSCRIBE"])
        except (WebSocketDisconnect, ValueError):
            pass
        finally:
            self.sockets.pop(ws, None)

    async def serve(self, port: int) -> None:
        app = Starlette(
            routes=[
                Route("/system/timestamp.json", self.timestamp, methods=["GET", "POST"]),
                Route("/devices/last-time/{ts}/devices.json", self.last_time, methods=["GET", "POST"]),
                WebSocketRoute("/eventbus/events.ws", self.eventbus),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        tasks = [asyncio.create_task(self.log_forever()), asyncio.create_task(self.alert_forever())]
        say(NAME, f"capturing on {', '.join(self.sources)} (simulated); REST on http://127.0.0.1:{port}")
        try:
            await server.serve()
        finally:
            for task in tasks:
                task.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kismet-standin", add_help=False)
    parser.add_argument("-c", "--capture-source", dest="sources", action="append", default=[])
    parser.add_argument("-p", "--log-prefix", dest="logs", default=".")
    args, _ = parser.parse_known_args(argv)
    port = int(os.environ.get("KISMET_STANDIN_PORT", "2501"))
    asyncio.run(Standin(args.sources or ["wlan2"], Path(args.logs)).serve(port))


if __name__ == "__main__":
    exit_on_sigterm(NAME)
    main()
