"""A Kismet stand-in: WiGLE CSV files written row by row, as Kismet's wiglecsv logger does.

Each run begins a new file (`Kismet-<date>-<time>-<n>.wiglecsv`) with the layout's
pre-header and column header, then appends one row per sighting, flushed at once.
Devices move (a walker's phone hotspot, a vehicle), fade out and come back, and their
SSIDs hold what breaks naive readers and XML builders: commas (Kismet writes `\\054`),
`&`, `<`, quotes and non-ASCII text (Kismet writes bytes outside printable ASCII as
`\\ooo` octal escapes).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

PREHEADER = {
    "1.4": "WigleWifi-1.4,appRelease=Kismet202406R1-wireway,model=Kismet,release=2024.06.R1-wireway,"
    "device=kismet,display=kismet,board=kismet,brand=kismet",
    "1.6": "WigleWifi-1.6,appRelease=Kismet202606-wireway,model=Kismet,release=2026.06.0-wireway,"
    "device=kismet,display=kismet,board=kismet,brand=Kismet,star=Sol,body=3,subBody=0",
}
HEADER = {
    "1.4": "MAC,SSID,AuthMode,FirstSeen,Channel,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,"
    "AccuracyMeters,Type",
    "1.6": "MAC,SSID,AuthMode,FirstSeen,Channel,Frequency,RSSI,CurrentLatitude,CurrentLongitude,"
    "AltitudeMeters,AccuracyMeters,RCOIs,MfgrId,Type",
}
SSIDS = [
    "HomeNet",
    "Cafe, Guest",
    "Tom & Jerry",
    "<script>alert(1)</script>",
    'Say "hi"',
    "Café Ñandú",
    "📶 Free WiFi",
    "",  # hidden
    "back\\slash",
    "Office-5G",
]
AUTH = ["[WPA2-PSK-CCMP][ESS]", "[ESS]", "[WPA3-SAE-CCMP][ESS]", "[WPA-PSK-CCMP+TKIP][WPA2-PSK-CCMP][ESS]"]
CHANNELS = [(1, 2412), (6, 2437), (11, 2462), (36, 5180), (149, 5745)]
ORIGIN = (38.110494, -122.626897)  # where the simulated survey happens


def kismet_text(text: str) -> str:
    """A field as Kismet writes it: printable ASCII as is, anything else (and the CSV
    delimiter, quotes and backslash) as `\\ooo` octal escapes of its UTF-8 bytes."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if 0x20 <= byte < 0x7F and char not in ',"\\':
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


@dataclass
class Device:
    mac: str
    ssid: str
    auth: str
    channel: int
    mhz: int
    lat: float
    lon: float
    rssi: int
    first_seen: str
    speed_m: float  # metres moved per sighting (0: fixed)
    heading: float
    away: int = 0  # sightings left before it is heard again


def destination(lat: float, lon: float, metres: float, heading: float) -> tuple[float, float]:
    north, east = metres * math.cos(heading), metres * math.sin(heading)
    return (lat + north / 111_320, lon + east / (111_320 * math.cos(math.radians(lat))))


class Simulator:
    """Devices and the rows they make; `write` appends them to a new file."""

    def __init__(self, devices: int = 30, layout: str = "1.6", seed: int | None = None) -> None:
        if layout not in HEADER:
            raise ValueError(f"layout {layout!r}: expected 1.4 or 1.6")
        self.layout = layout
        self.random = random.Random(seed)
        self.devices = [self.device(i) for i in range(devices)]

    def device(self, i: int) -> Device:
        r = self.random
        channel, mhz = CHANNELS[i % len(CHANNELS)]
        lat, lon = destination(*ORIGIN, r.uniform(0, 300), r.uniform(0, 2 * math.pi))
        first = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        mac = ":".join(f"{b:02X}" for b in [0x02, 0x57, 0x57, i >> 16 & 0xFF, i >> 8 & 0xFF, i & 0xFF])
        return Device(
            mac=mac,
            ssid=SSIDS[i % len(SSIDS)],
            auth=AUTH[i % len(AUTH)],
            channel=channel,
            mhz=mhz,
            lat=lat,
            lon=lon,
            rssi=r.randint(-90, -40),
            first_seen=first,
            speed_m=50.0 if i % 7 == 3 else 0.0,  # every seventh device is on the move
            heading=r.uniform(0, 2 * math.pi),
        )

    def header(self) -> str:
        return f"{PREHEADER[self.layout]}\n{HEADER[self.layout]}\n"

    def line(self, d: Device) -> str:
        """One row as Kismet writes it in this layout."""
        common = [d.mac, kismet_text(d.ssid), d.auth, d.first_seen, str(d.channel)]
        place = [str(d.rssi), f"{d.lat:.6f}", f"{d.lon:.6f}", "53.500000", "5"]
        if self.layout == "1.4":
            return ",".join([*common, *place, "WIFI"]) + "\n"
        # 1.6: frequency in kHz, and WiFi rows stop before RCOIs and MfgrId
        return ",".join([*common, str(d.mhz * 1000), *place, "WIFI"]) + "\n"

    def sightings(self) -> Iterator[str]:
        """Rows forever: a device heard, moved on, sometimes gone for a while and back."""
        r = self.random
        while True:
            d = r.choice(self.devices)
            if d.away:
                d.away -= 1
                continue
            if d.speed_m:
                d.lat, d.lon = destination(d.lat, d.lon, d.speed_m, d.heading)
            d.rssi = max(-95, min(-30, d.rssi + r.randint(-3, 3)))
            if r.random() < 0.02:
                d.away = r.randint(5, 50)  # out of range for a while, then heard again
            yield self.line(d)

    def write(
        self,
        folder: Path,
        rows: int,
        rate: float,
        progress: Callable[[int], None] | None = None,
    ) -> Path:
        """A new file in `folder`, then `rows` rows at `rate` per second, each flushed."""
        folder.mkdir(parents=True, exist_ok=True)
        path = new_file(folder)
        started = time.monotonic()
        with path.open("w", encoding="ascii", newline="") as f:
            f.write(self.header())
            f.flush()
            for n, text in enumerate(self.sightings(), 1):
                if n > rows:
                    break
                f.write(text)
                f.flush()
                if progress is not None:
                    progress(1)
                if rate > 0:
                    ahead = started + n / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        return path


def new_file(folder: Path) -> Path:
    """Kismet's name for a new log: its start time and a counter."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H-%M-%S")
    n = 1
    while (folder / f"Kismet-{stamp}-{n}.wiglecsv").exists():
        n += 1
    return folder / f"Kismet-{stamp}-{n}.wiglecsv"
