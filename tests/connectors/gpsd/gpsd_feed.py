"""A real gpsd for tests: Debian's gpsd reading NMEA from a TCP source the test serves.

`GpsdServer` starts `gpsd -N -n -S <port> tcp://127.0.0.1:<source>`; the test's own
`NmeaSource` (a TCP server on loopback) is that source and writes the sentences the
test chooses, when it chooses. `need_gpsd()` fails in CI (CI=true) and skips elsewhere
when gpsd is not installed, as `need_service` does for servers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import DATA, free_port

GPSD = shutil.which("gpsd") or ("/usr/sbin/gpsd" if Path("/usr/sbin/gpsd").exists() else None)
TRACK = DATA / "nmea_track_greenwich.nmea"


def need_gpsd() -> str:
    """The path of gpsd, or skip (in CI: fail) with what to install."""
    if GPSD is None:
        message = "gpsd is not installed (Debian: apt-get install gpsd gpsd-clients)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return GPSD


def checksum(body: str) -> str:
    value = 0
    for ch in body:
        value ^= ord(ch)
    return f"{value:02X}"


def sentence(body: str) -> bytes:
    return f"${body}*{checksum(body)}\r\n".encode()


def degrees_minutes(value: float, width: int, hemispheres: str) -> tuple[str, str]:
    whole = int(abs(value))
    minutes = (abs(value) - whole) * 60
    return f"{whole:0{width}d}{minutes:07.4f}", hemispheres[0] if value >= 0 else hemispheres[1]


def epoch(second: int, lat: float, lon: float, fix: bool = True, day: str = "201126") -> bytes:
    """One second of a receiver's output: GGA and RMC (a fix, or none)."""
    hh, mm, ss = 10 + second // 3600, (second // 60) % 60, second % 60
    stamp = f"{hh:02d}{mm:02d}{ss:02d}.00"
    la, ns = degrees_minutes(lat, 2, "NS")
    lo, ew = degrees_minutes(lon, 3, "EW")
    if not fix:
        return sentence(f"GPGGA,{stamp},,,,,0,00,99.9,,M,,M,,") + sentence(f"GPRMC,{stamp},V,,,,,,,{day},,,N")
    return sentence(f"GPGGA,{stamp},{la},{ns},{lo},{ew},1,08,0.9,45.3,M,47.0,M,,") + sentence(
        f"GPRMC,{stamp},A,{la},{ns},{lo},{ew},2.7,54.7,{day},,,A"
    )


def track(count: int, first_second: int = 0) -> bytes:
    """`count` seconds of fixes walking north-east from Greenwich, 1 s apart."""
    return b"".join(
        epoch(first_second + i, 51.4778 + (first_second + i) * 1e-5, -0.0014 + (first_second + i) * 1.5e-5)
        for i in range(count)
    )


class NmeaSource:
    """A TCP server gpsd reads from: each connection gets what `send` is given next."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.server.settimeout(0.2)
        self.clients: list[socket.socket] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self) -> None:
        while self.running:
            try:
                client, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            with self.lock:
                self.clients.append(client)

    @property
    def connected(self) -> bool:
        with self.lock:
            return bool(self.clients)

    def send(self, data: bytes, pace: float = 0.0, chunk: int = 1) -> None:
        """Write `data` to every connected gpsd, `chunk` lines at a time, `pace` s apart."""
        lines = data.splitlines(keepends=True)
        for start in range(0, len(lines), chunk):
            part = b"".join(lines[start : start + chunk])
            with self.lock:
                for client in list(self.clients):
                    try:
                        client.sendall(part)
                    except OSError:
                        self.clients.remove(client)
            if pace:
                time.sleep(pace)

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        with self.lock:
            for client in self.clients:
                client.close()
            self.clients.clear()
        self.server.close()


class GpsdServer:
    """Debian's gpsd on a free loopback port, reading `source`; stop and start it at will."""

    def __init__(self, source: NmeaSource, port: int | None = None) -> None:
        self.binary = need_gpsd()
        self.source = source
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-N", "-n", "-S", str(self.port), f"tcp://127.0.0.1:{self.source.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            break
        else:
            self.stop()
            raise AssertionError("gpsd did not listen in 10 s")
        deadline = time.monotonic() + 10
        while not self.source.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.source.connected, "gpsd did not connect to the NMEA source"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        # gpsd's end closes its side of the source connection: forget it
        with self.source.lock:
            for client in self.source.clients:
                client.close()
            self.source.clients.clear()
