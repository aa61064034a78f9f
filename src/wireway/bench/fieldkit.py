"""`wireway bench fieldkit`: the field kit application (`wireway run --app fieldkit`)
measured from outside, as Kismet and a TAK client see it.

A WiGLE CSV file (layout 1.6, devices that move further than `track`'s threshold
at each sighting, so every row is an event) is appended in a temporary Kismet
folder; a listener joined to the kit's multicast group on this host (TTL 0: no
datagram leaves it) counts the CoT events. Each row's SSID ends in ` #<row>` (and
`@<time written>` in the paced run), which the event carries back as its callsign.

- full speed: rows/s from the first write to the last event, durable buffer;
- tracked: that many distinct devices with the refresh timer on, peak RSS once
  every marker has been refreshed; then with the timer off (the kit's default);
- paced: `rate` rows/s, p50/p99 from the row written to its event received;
- WigleToTAK: the same rows through WigleToTAK itself, run by
  `benchmarks/wigletotak/run.py` from a source checkout, counting what it loses.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.table import Table

import wireway
from wireway.apps.fieldkit.simulate import (
    AUTH,
    CHANNELS,
    HEADER,
    ORIGIN,
    PREHEADER,
    SSIDS,
    destination,
    kismet_text,
)
from wireway.bench.common import console, cpu_seconds, free_port, pct, peak_rss_mb, stop, wait_port

GROUP = "239.255.42.98"
STEP_M = 30.0  # metres a device moves between sightings: above the kit's 10 m threshold
REFRESH_SECONDS = 5.0  # the tracked run's refresh period
SO_RCVBUFFORCE = 33  # Linux's; Python does not name it
MOVING = 2000  # devices of the full-speed and paced runs


def header() -> bytes:
    return f"{PREHEADER['1.6']}\n{HEADER['1.6']}\n".encode()


def survey(rows: int, devices: int, seed: int = 7) -> list[bytes]:
    """Rows as Kismet's wiglecsv logger writes them, round robin over `devices`, each
    device `STEP_M` further along its heading than at its previous sighting."""
    r = random.Random(seed)
    names = [kismet_text(s) for s in SSIDS if s]  # a hidden SSID would carry no row number
    first = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    kit = []
    for i in range(devices):
        channel, mhz = CHANNELS[i % len(CHANNELS)]
        lat, lon = destination(*ORIGIN, r.uniform(0, 300), r.uniform(0, 2 * math.pi))
        mac = ":".join(f"{b:02X}" for b in (0x02, 0x57, 0x57, i >> 16 & 0xFF, i >> 8 & 0xFF, i & 0xFF))
        head = f"{mac},{names[i % len(names)]}"
        tail = f"{AUTH[i % len(AUTH)]},{first},{channel},{mhz * 1000}"
        kit.append((head, tail, lat, lon, r.uniform(0, 2 * math.pi), r.randint(-90, -40)))
    out = []
    for k in range(rows):
        head, tail, lat, lon, heading, rssi = kit[k % devices]
        lat, lon = destination(lat, lon, STEP_M * (k // devices), heading)
        out.append(f"{head} #{k},{tail},{rssi},{lat:.6f},{lon:.6f},53.500000,5,WIFI\n".encode())
    return out


def stamp(row: bytes, now: float) -> bytes:
    """The row with the time it is written after its SSID's row number."""
    mac, ssid, rest = row.split(b",", 2)
    return b"%s,%s@%.6f,%s" % (mac, ssid, now, rest)


def append(path: Path, rows: list[bytes], rate: float | None) -> float:
    """Append the rows: at full speed in blocks, or paced in 1 ms slots and stamped.
    Returns when the first was written."""
    start = time.time()
    sent = 0
    chunk = 2000 if rate is None else max(1, int(rate / 1000))
    with path.open("ab", buffering=0) as f:
        while sent < len(rows):
            block = rows[sent : sent + chunk]
            if rate is not None:
                delay = start + sent / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                now = time.time()
                block = [stamp(row, now) for row in block]
            f.write(b"".join(block))
            sent += len(block)
    return start


class Events:
    """A TAK client on the group: the events it receives, their row numbers, the
    devices (uids) and the latency of stamped rows."""

    def __init__(self, port: int) -> None:
        self.count = 0
        self.rows: set[int] = set()
        self.uids: set[bytes] = set()
        self.latencies: list[float] = []
        self.last_seen = 0.0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:  # as root, past net.core.rmem_max: a burst of 20,000 events/s fits
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        self.sock.bind((GROUP, port))
        # joined where the kit sends (the route to the group); TTL 0 keeps it on this host
        join = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("0.0.0.0"))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, join)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except OSError:
                continue
            now = time.time()
            self.count += 1
            self.last_seen = now
            self.take(data, now)

    def take(self, data: bytes, now: float) -> None:
        start = data.find(b'uid="') + 5
        self.uids.add(data[start : data.find(b'"', start)])
        start = data.find(b'callsign="') + 10
        callsign = data[start : data.find(b'"', start)]
        mark = callsign.rfind(b" #")
        if mark < 0:
            return
        number, _, written = callsign[mark + 2 :].partition(b"@")
        try:
            self.rows.add(int(number))
            if written:
                self.latencies.append(now - float(written))
        except ValueError:
            return

    def wait(self, rows: int, timeout: float, still: float = 10.0) -> None:
        """Until `rows` distinct rows arrived, nothing arrived for `still` s, or `timeout`."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while len(self.rows) < rows and time.monotonic() < deadline:
            if self.count != last:
                last, since = self.count, time.monotonic()
            elif time.monotonic() - since > still:
                return
            time.sleep(0.01)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


class Kit:
    """`wireway run --app fieldkit` on a temporary Kismet folder, sending to the group."""

    def __init__(self, folder: Path, port: int, **env: str) -> None:
        self.wigle = folder / "kismet"
        self.wigle.mkdir(parents=True)
        self.file = self.wigle / "Kismet-20261204-10-00-00-1.wiglecsv"
        self.file.write_bytes(header())
        listen = free_port()
        variables = {
            "FIELDKIT_WIGLE_DIR": str(self.wigle),
            "FIELDKIT_LISTEN": f"127.0.0.1:{listen}",
            "FIELDKIT_MULTICAST": f"{GROUP}:{port}",
            "FIELDKIT_MULTICAST_TTL": "0",
            **env,
        }
        cmd = [sys.executable, "-m", "wireway", "run", "--app", "fieldkit"]
        cmd += [
            "--data-dir",
            str(folder / "data"),
            "--http",
            f"127.0.0.1:{free_port()}",
            "--log-level",
            "WARNING",
        ]
        full_env = {k: v for k, v in os.environ.items() if k != "WIREWAY_CONFIG"}
        self.proc = subprocess.Popen(cmd, env={**full_env, **variables}, stdout=subprocess.DEVNULL)
        try:
            wait_port(listen, 60)
        except RuntimeError:
            self.close()
            raise

    def warm_up(self, events: Events) -> None:
        """One row of a device outside the survey: the kit follows the file once it arrives."""
        with self.file.open("ab") as f:
            f.write(b"02:57:57:FF:FF:FF,bench-start,[ESS],2026-12-04 10:00:00,6,2437000,-50,")
            f.write(b"38.110494,-122.626897,53.500000,5,WIFI\n")
        deadline = time.monotonic() + 30
        while events.count < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        if events.count < 1:
            raise RuntimeError("the field kit sent nothing for its first row in 30 s")

    def close(self) -> None:
        stop(self.proc, 40)


def run_kit(
    folder: Path,
    rows: list[bytes],
    rate: float | None,
    wait_refresh: bool = False,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    port = free_port()
    events = Events(port)
    kit = None
    try:
        kit = Kit(folder, port, **(env or {}))
        kit.warm_up(events)
        cpu0 = cpu_seconds(kit.proc.pid)
        start = append(kit.file, rows, rate)
        written = time.time()
        events.wait(len(rows), 180)
        last = events.last_seen
        cpu = cpu_seconds(kit.proc.pid) - cpu0
        refreshed = 0
        if wait_refresh:  # every marker sent again by the timer
            before = events.count
            deadline = time.monotonic() + REFRESH_SECONDS + 120
            while events.count - before < len(rows) and time.monotonic() < deadline:
                time.sleep(0.1)
            refreshed = events.count - before
        rss = peak_rss_mb(kit.proc.pid)
    finally:
        if kit is not None:
            kit.close()
        events.close()
    lat = sorted(events.latencies)
    delivered = len(events.rows)
    return {
        "rows": len(rows),
        "delivered": delivered,
        "events": events.count - 1,
        "written": len(rows) / max(written - start, 1e-9),
        "rate": delivered / (last - start) if last > start else 0.0,
        "p50": pct(lat, 0.50) if lat else math.nan,
        "p99": pct(lat, 0.99) if lat else math.nan,
        "cpu": cpu,
        "rss": rss,
        "refreshed": refreshed,
    }


def runner() -> Path:
    return Path(wireway.__file__).resolve().parents[2] / "benchmarks" / "wigletotak" / "run.py"


def run_peer(folder: Path, rows: list[bytes], paced: int, rate: float, source: str | None) -> dict[str, Any]:
    """WigleToTAK through its runner (a source checkout's benchmarks/), or why not."""
    script = runner()
    if not script.exists():
        return {"error": f"{script} not found: run the bench from a source checkout"}
    if not source:
        return {"error": "no WigleToTAK source: set WIGLETOTAK_SRC (or --wigletotak) to a clone of it"}
    data = folder / "rows.wiglecsv"
    data.write_bytes(header() + b"".join(rows))
    cmd = [sys.executable, str(script), "--source", source, "--rows", str(data)]
    cmd += ["--paced", str(paced), "--rate", str(rate), "--json"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "WigleToTAK's runner did not finish in 900 s"}
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": f"WigleToTAK's runner failed: {(done.stderr or done.stdout).strip()[-400:]}"}
    return result


def run_fieldkit_bench(
    *, rows: int, rate: int, latency_seconds: float, tracked: int, source: str | None
) -> None:
    devices = min(MOVING, rows)
    title = f"wireway bench fieldkit: wiglecsv tail -> track -> CoT multicast, {os.cpu_count()} cores"
    table = Table(title=title)
    columns = ("run", "rows", "events", "rows/s", "p50 ms", "p99 ms", "CPU ms/1k", "RSS MB", "notes")
    for col in columns:
        table.add_column(col, justify="left" if col in ("run", "notes") else "right")
    paced = max(1, int(rate * latency_seconds))
    with tempfile.TemporaryDirectory(prefix="wireway-bench-fieldkit-") as tmp:
        base = Path(tmp)
        survey_rows = survey(rows, devices)
        with console.status(f"full speed: {rows:,} rows of {devices:,} moving devices"):
            top = run_kit(base / "top", survey_rows, None)
        many = survey(tracked, tracked, seed=8)
        every = {"FIELDKIT_REFRESH_SECONDS": str(REFRESH_SECONDS)}
        with console.status(f"{tracked:,} devices tracked, refreshed every {REFRESH_SECONDS:.0f} s"):
            mem = run_kit(base / "tracked", many, None, True, {**every, "FIELDKIT_REFRESH_EMIT": "true"})
        with console.status(f"{tracked:,} devices tracked, no refresh timer"):
            still = run_kit(base / "still", many, None, False, {**every, "FIELDKIT_REFRESH_EMIT": "false"})
        with console.status(f"{rate:,} rows/s offered for {latency_seconds:g} s"):
            low = run_kit(base / "paced", survey(paced, devices), rate)
        for label, r, note in (
            ("full speed", top, f"written at {r_fmt(top['written'])}/s; durable buffer"),
            (f"{tracked:,} devices", mem, f"refresh timer on: {r_fmt(mem['refreshed'])} refreshed events"),
            (f"{tracked:,} devices", still, "refresh timer off (the kit's default)"),
            (f"{rate:,}/s", low, ""),
        ):
            table.add_row(
                label,
                f"{r['delivered']:,}/{r['rows']:,}",
                f"{r['events']:,}",
                "-" if r is low else r_fmt(r["rate"]),
                "-" if r is not low else f"{r['p50']:.1f}",
                "-" if r is not low else f"{r['p99']:.1f}",
                f"{r['cpu'] * 1e6 / max(r['delivered'], 1):.0f}",
                f"{r['rss']:.0f}",
                note,
            )
        with console.status("the same rows through WigleToTAK"):
            peer = run_peer(base, survey_rows, paced, rate, source)
    add_peer(table, peer)
    console.print(table)


def r_fmt(value: float) -> str:
    return f"{value:,.0f}"


def add_peer(table: Table, peer: dict[str, Any]) -> None:
    if "error" in peer:
        table.add_row("WigleToTAK", "-", "-", "-", "-", "-", "-", "-", f"not run: {peer['error']}")
        return
    for r in peer["runs"]:
        lost = r["rows"] - r["delivered"]
        note = (
            f"lost {lost:,} rows ({lost / max(r['rows'], 1):.1%}); devices {r['devices_received']:,}"
            f"/{r['devices']:,}; {r['other']:,} events for header lines"
        )
        table.add_row(
            f"WigleToTAK {r['run']}",
            f"{r['delivered']:,}/{r['rows']:,}",
            f"{r['events']:,}",
            "-",
            f"{r['p50']:.1f}" if r["p50"] is not None else "-",
            f"{r['p99']:.1f}" if r["p99"] is not None else "-",
            "-",
            f"{r['rss']:.0f}",
            note,
        )
