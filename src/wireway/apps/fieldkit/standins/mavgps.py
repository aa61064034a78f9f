"""A stand-in for the kit's MAVLink GPS bridge: connects to gpsd (`--gpsd HOST:PORT`,
default 127.0.0.1:2947), says `connected` once gpsd answered, and reports the fixes
it reads; it exits when gpsd goes away (as the bridge does)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from wireway.apps.fieldkit.standins import exit_on_sigterm, say

NAME = "mavgps"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mavgps-standin", add_help=False)
    parser.add_argument("--gpsd", default="127.0.0.1:2947")
    args, _ = parser.parse_known_args(argv)
    host, _, port = args.gpsd.rpartition(":")
    try:
        reader, writer = await asyncio.open_connection(host or "127.0.0.1", int(port))
    except OSError as exc:
        say(NAME, f"gpsd at {args.gpsd} refused: {exc}")
        return 1
    banner = json.loads(await reader.readline())
    writer.write(b'?WATCH={"enable":true,"json":true}\n')
    await writer.drain()
    say(NAME, f"connected to gpsd {banner.get('release')} at {args.gpsd}")
    fixes = 0
    while True:
        line = await reader.readline()
        if not line:
            say(NAME, "gpsd closed the connection")
            return 1
        report = json.loads(line)
        if report.get("class") == "TPV":
            fixes += 1
            if fixes % 10 == 1:
                say(NAME, f"fix {report.get('lat')}, {report.get('lon')} (fix {fixes})")


if __name__ == "__main__":
    exit_on_sigterm(NAME)
    sys.exit(asyncio.run(main()))
