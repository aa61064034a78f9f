"""The simulated kit's own GPS: an NMEA track served to Debian's gpsd (when installed).

`kit_gps(port)` serves GGA and RMC sentences, once a second, of a kit walking a
circle around the simulated survey, on a loopback TCP port, and starts
`gpsd -N -n -S <port> tcp://127.0.0.1:<that port>` so the field kit's `gpsd` input
(`FIELDKIT_GPSD_ENABLED=true FIELDKIT_GPSD=127.0.0.1:<port>`) has a receiver to read.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import reduce

from wireway.apps.fieldkit.simulate import ORIGIN, destination

WALK_RADIUS_M = 150.0
WALK_SECONDS = 600.0  # one round


def checksum(body: str) -> str:
    return f"{reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def _angle(value: float, width: int, positive: str, negative: str) -> tuple[str, str]:
    hemisphere = positive if value >= 0 else negative
    value = abs(value)
    degrees = int(value)
    return f"{degrees:0{width}d}{(value - degrees) * 60:07.4f}", hemisphere


def sentences(lat: float, lon: float, when: datetime, speed_mps: float, course: float) -> bytes:
    """GGA (fix, 8 satellites, HDOP 0.9, 53.5 m) and RMC for one moment, CR-LF ended."""
    clock = when.strftime("%H%M%S.00")
    la, ns = _angle(lat, 2, "N", "S")
    lo, ew = _angle(lon, 3, "E", "W")
    gga = f"GPGGA,{clock},{la},{ns},{lo},{ew},1,08,0.9,53.5,M,-32.0,M,,"
    knots = speed_mps * 1.943844
    rmc = f"GPRMC,{clock},A,{la},{ns},{lo},{ew},{knots:.1f},{course:.1f},{when.strftime('%d%m%y')},,,A"
    return "".join(f"${body}*{checksum(body)}\r\n" for body in (gga, rmc)).encode("ascii")


def position(seconds: float) -> tuple[float, float, float]:
    """Where the walking kit is after `seconds`: latitude, longitude, course in degrees."""
    turn = 2 * math.pi * (seconds % WALK_SECONDS) / WALK_SECONDS
    lat, lon = destination(*ORIGIN, WALK_RADIUS_M, turn)
    return lat, lon, math.degrees(turn + math.pi / 2) % 360


class NmeaSource:
    """A loopback TCP server writing the track to whoever connects (gpsd), once a second."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="nmea-source", daemon=True)

    def run(self) -> None:
        self.server.settimeout(0.5)
        started = time.monotonic()
        clients: list[socket.socket] = []
        speed = 2 * math.pi * WALK_RADIUS_M / WALK_SECONDS
        while not self.stopped.is_set():
            with contextlib.suppress(TimeoutError):
                clients.append(self.server.accept()[0])
            lat, lon, course = position(time.monotonic() - started)
            data = sentences(lat, lon, datetime.now(UTC), speed, course)
            for client in list(clients):
                try:
                    client.sendall(data)
                except OSError:
                    clients.remove(client)
                    client.close()
            self.stopped.wait(0.5)
        for client in clients:
            client.close()
        self.server.close()


@contextlib.contextmanager
def kit_gps(port: int) -> Iterator[str]:
    """Run gpsd on `port` fed the walking track; yields what happened, for the console."""
    gpsd = shutil.which("gpsd") or ("/usr/sbin/gpsd" if os.path.exists("/usr/sbin/gpsd") else None)
    if gpsd is None:
        yield "gpsd is not installed (Debian: apt-get install gpsd): no GPS feed"
        return
    source = NmeaSource()
    source.thread.start()
    proc = subprocess.Popen(
        [gpsd, "-N", "-n", "-S", str(port), f"tcp://127.0.0.1:{source.port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"gpsd on 127.0.0.1:{port} follows a simulated walk (FIELDKIT_GPSD=127.0.0.1:{port})"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        source.stopped.set()
        source.thread.join(5)
