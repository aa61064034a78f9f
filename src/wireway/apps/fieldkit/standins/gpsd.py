"""A gpsd stand-in: gpsd's JSON protocol (VERSION on connect, DEVICES and WATCH
after `?WATCH=`, then a TPV with a 3D fix every second on a walk) on gpsd's port.

Takes gpsd's arguments: `-S PORT` (default 2947), `-G` (listen on every address,
else loopback), the device paths (shown in DEVICES); others (`-N`, `-n`, ...) ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime

from wireway.apps.fieldkit.standins import exit_on_sigterm, say, walk

NAME = "gpsd"


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="gpsd-standin", add_help=False)
    parser.add_argument("-S", dest="port", type=int, default=2947)
    parser.add_argument("-G", dest="everywhere", action="store_true")
    parser.add_argument("-F", dest="control_socket")
    parser.add_argument("-D", dest="debug")
    parser.add_argument("-s", dest="speed")
    return parser.parse_known_args(argv)


def tpv(device: str) -> bytes:
    lat, lon = walk(datetime.now(UTC).timestamp())
    report = {
        "class": "TPV",
        "device": device,
        "mode": 3,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "lat": round(lat, 7),
        "lon": round(lon, 7),
        "altHAE": 53.5,
        "eph": 4.0,
        "speed": 0.25,
        "track": 90.0,
    }
    return json.dumps(report).encode() + b"\r\n"


async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, devices: list[str]) -> None:
    version = {
        "class": "VERSION",
        "release": "3.25 (stand-in)",
        "rev": "stand-in",
        "proto_major": 3,
        "proto_minor": 15,
    }
    writer.write(json.dumps(version).encode() + b"\r\n")
    try:
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"?WATCH"):
                break
        listed = [{"class": "DEVICE", "path": d, "driver": "NMEA0183", "activated": "now"} for d in devices]
        writer.write(json.dumps({"class": "DEVICES", "devices": listed}).encode() + b"\r\n")
        writer.write(json.dumps({"class": "WATCH", "enable": True, "json": True}).encode() + b"\r\n")
        while True:
            writer.write(tpv(devices[0]))
            await writer.drain()
            await asyncio.sleep(1.0)
    except (ConnectionError, OSError):
        return
    finally:
        writer.close()


async def main(argv: list[str] | None = None) -> None:
    args, rest = parse(argv)
    devices = [a for a in rest if not a.startswith("-")] or ["/dev/ttyUSB0"]
    host = "0.0.0.0" if args.everywhere else "127.0.0.1"
    server = await asyncio.start_server(lambda r, w: client(r, w, devices), host, args.port)
    say(NAME, f"listening on {host}:{args.port}, a simulated receiver on {', '.join(devices)}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    exit_on_sigterm(NAME)
    asyncio.run(main())
