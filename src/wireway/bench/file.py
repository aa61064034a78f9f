"""`wireway bench file`: a file appended at full speed -> file tail -> a file output, a
udp multicast output on this host, and both at once, with the memory and the durable
buffer, measured from outside a real `wireway run` subprocess.

The full-speed run appends every line as fast as Python can write them and measures
lines/s from the first write to the last line seen at the slowest output (the output
file, or the datagrams a listener on the group receives); the latency run appends at
half that rate, each line carrying the time it was written, and measures when it
arrives there.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
from rich.table import Table

from wireway import registry
from wireway.bench.common import console, cpu_seconds, free_port, pct, peak_rss_mb, stop
from wireway.bench.tcp import Tail

GROUP = "239.255.42.99"

PATTERN = """
pattern: {{name: bench-file, type: streaming}}
interfaces:
  input:
    - {{type: file, path: "{src}", format: jsonl}}
  output:
{outputs}settings: {{buffer: {buffer}, buffer_size: 20000, batch_size: 2000, timeout: 30}}
"""
FILE = '    - {{type: file, address: "{out}", format: jsonl, payload_only: true, fsync: never}}\n'
UDP = '    - {{type: udp, address: "{group}:{port}", interface: 127.0.0.1, ttl: 0, payload_only: true}}\n'


class Datagrams:
    """Counts the datagrams the udp output sends to the group, on loopback, and the
    latency of those that carry the time their line was written."""

    def __init__(self, port: int) -> None:
        self.count = 0
        self.latencies: list[float] = []
        self.last_seen = 0.0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((GROUP, port))
        join = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("127.0.0.1"))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, join)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self) -> None:
        decode = msgspec.json.Decoder().decode
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except OSError:
                continue
            now = time.time()
            if b'"t":' in data:
                self.latencies.append(now - decode(data)["t"])
            self.count += 1
            self.last_seen = now

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def append(src: Path, n: int, rate: float | None) -> float:
    """Append n lines; with `rate`, paced in 1 ms slots and stamped. Returns the start."""
    start = time.time()
    sent = 0
    chunk = 2000 if rate is None else max(1, int(rate / 1000))
    with src.open("ab", buffering=0) as f:
        while sent < n:
            k = min(chunk, n - sent)
            if rate is not None:
                delay = start + sent / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            now = time.time()
            f.write(
                b"".join(
                    b'{"seq":%d,"t":%.6f,"device":"bench","value":%d}\n' % (sent + i, now, i)
                    if rate is not None
                    else b'{"seq":%d,"device":"bench","value":%d}\n' % (sent + i, i)
                    for i in range(k)
                )
            )
            sent += k
    return start


def run_case(buffer: str, n: int, rate: float | None, workdir: Path, leg: str) -> dict[str, Any]:
    case = workdir / f"{buffer}-{'rate' if rate else 'max'}"
    case.mkdir()
    src, out = case / "in.jsonl", case / "out.jsonl"
    src.write_bytes(b"")
    port = free_port()
    udp, to_file = "udp" in leg, "file" in leg
    outputs = (FILE.format(out=out) if to_file else "") + (UDP.format(group=GROUP, port=port) if udp else "")
    (case / "bench.yaml").write_text(PATTERN.format(src=src, buffer=buffer, outputs=outputs))
    cmd = [sys.executable, "-m", "wireway", "run", str(case / "bench.yaml"), "--data-dir", str(case / "data")]
    cmd += ["--http", f"127.0.0.1:{free_port()}", "--log-level", "WARNING"]
    datagrams = Datagrams(port) if udp else None
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    tail = Tail(out) if to_file else None

    def seen() -> int:  # lines at the slowest output
        counts = [t.count for t in (tail,) if t is not None]
        counts += [d.count for d in (datagrams,) if d is not None]
        return min(counts)

    try:
        # the input follows the file once it has started: one line shows it has
        deadline = time.monotonic() + 30
        append(src, 1, None)
        while seen() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        if seen() < 1:
            raise RuntimeError("wireway did not start reading the file")
        cpu0 = cpu_seconds(proc.pid)
        start = append(src, n, rate)
        deadline = time.monotonic() + 120
        while seen() < n + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        if tail is not None:
            tail.stop.set()
        cpu = cpu_seconds(proc.pid) - cpu0
        last = max(x.last_seen for x in (tail, datagrams) if x is not None)
        elapsed = (last or time.time()) - start
        rss = peak_rss_mb(proc.pid)
    finally:
        stop(proc, 40)
        if datagrams is not None:
            datagrams.close()
    # latency at the output the line reached last: the file's, else the datagrams'
    lat = sorted(tail.latencies if tail is not None else datagrams.latencies if datagrams else [])
    delivered = seen() - 1
    return {
        "delivered": delivered,
        "rate": delivered / elapsed if elapsed > 0 else 0.0,
        "p50": pct(lat, 0.50) if lat else float("nan"),
        "p99": pct(lat, 0.99) if lat else float("nan"),
        "cpu": cpu,
        "rss": rss,
    }


def run_file_bench(*, lines: int, latency_seconds: float, buffer: str) -> None:
    buffers = ["memory", "durable"] if buffer == "both" else [buffer]
    legs = ["file", "udp", "file + udp"] if "udp" in registry.names("output") else ["file"]
    table = Table(title=f"wireway bench file: file tail -> buffer -> outputs, {os.cpu_count()} cores")
    columns = ("buffer", "outputs", "run", "lines", "lines/s", "p50 ms", "p99 ms", "CPU ms/1k", "RSS MB")
    for col in columns:
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="wireway-bench-file-") as tmp:
        for buf in buffers:
            for outputs in legs:
                folder = Path(tmp) / outputs.replace(" + ", "-")
                folder.mkdir(exist_ok=True)
                with console.status(f"{buf} buffer, {outputs}, full speed"):
                    top = run_case(buf, lines, None, folder, outputs)
                half = max(1000.0, top["rate"] / 2)
                with console.status(f"{buf} buffer, {outputs}, {half:,.0f} lines/s offered"):
                    low = run_case(buf, int(half * latency_seconds), half, folder, outputs)
                for label, r in (("full speed", top), (f"{half:,.0f}/s", low)):
                    table.add_row(
                        buf,
                        outputs,
                        label,
                        f"{r['delivered']:,}",
                        f"{r['rate']:,.0f}",
                        "-" if r is top else f"{r['p50']:.1f}",
                        "-" if r is top else f"{r['p99']:.1f}",
                        f"{r['cpu'] * 1e6 / max(r['delivered'], 1):.0f}",
                        f"{r['rss']:.0f}",
                    )
    console.print(table)
