"""`wireway bench`: tcp -> buffer -> file on loopback, measured from outside the process.

The engine runs as a real `wireway run` subprocess. One thread sends JSON lines
over TCP (at full speed, or at a fixed offered rate), another tails the output
file; latency is the time from just before a line is sent to when its line is
seen in the output file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wireway.bench.common import console, free_port, peak_rss_mb, wait_port

PATTERN = """
pattern: {{name: bench, type: streaming}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{type: file, address: "{out}", format: jsonl, payload_only: true, fsync: never}}
settings: {{buffer: {buffer}, buffer_size: 20000, batch_size: 2000, timeout: 30}}
"""


class Tail:
    """Follow the output file, counting lines and collecting latencies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.first_seen = 0.0
        self.last_seen = 0.0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        decode = msgspec.json.Decoder().decode
        while not self.path.exists() and not self.stop.is_set():
            time.sleep(0.001)
        with self.path.open("rb") as f:
            rest = b""
            while not self.stop.is_set():
                chunk = f.read(1 << 20)
                if not chunk:
                    time.sleep(0.0005)
                    continue
                now = time.time()
                data = rest + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    rest = data
                    continue
                rest = data[cut + 1 :]
                lines = data[:cut].split(b"\n")
                for line in lines:
                    t = decode(line).get("t")
                    if t:
                        self.latencies.append(now - t)
                self.count += len(lines)
                self.first_seen = self.first_seen or now
                self.last_seen = now


def send(port: int, n: int, rate: float | None, progress: Progress, task: object) -> float:
    """Send n lines; with `rate`, paced in 1 ms slots. Returns the start time."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.time()
    sent = 0
    chunk = 1000 if rate is None else max(1, int(rate / 1000))
    while sent < n:
        k = min(chunk, n - sent)
        if rate is not None:
            due = start + sent / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
        now = time.time()
        payload = b"".join(
            b'{"seq":%d,"t":%.6f,"device":"bench","value":%d}\n' % (sent + i, now, i)
            if rate is not None
            else b'{"seq":%d,"device":"bench","value":%d}\n' % (sent + i, i)
            for i in range(k)
        )
        sock.sendall(payload)
        sent += k
        progress.update(task, completed=sent)  # type: ignore[arg-type]
    sock.close()
    return start


def run_case(buffer: str, n: int, rate: float | None, workdir: Path) -> dict[str, float]:
    case = workdir / f"{buffer}-{'rate' if rate else 'max'}"
    case.mkdir()
    port, http = free_port(), free_port()
    out = case / "out.jsonl"
    (case / "bench.yaml").write_text(PATTERN.format(port=port, out=out, buffer=buffer))
    cmd = [
        sys.executable,
        "-m",
        "wireway",
        "run",
        str(case / "bench.yaml"),
        "--data-dir",
        str(case / "data"),
        "--http",
        f"127.0.0.1:{http}",
        "--log-level",
        "WARNING",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        tail = Tail(out)
        label = f"{buffer} buffer, " + (f"{rate:.0f} msg/s offered" if rate else "full speed")
        with Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("send", total=n)
            start = send(port, n, rate, progress, task)
            deadline = time.monotonic() + 120
            while tail.count < n and time.monotonic() < deadline:
                time.sleep(0.01)
        tail.stop.set()
        elapsed = (tail.last_seen or time.time()) - start
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    lat = sorted(tail.latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else float("nan")

    return {
        "delivered": tail.count,
        "rate": tail.count / elapsed if elapsed > 0 else 0.0,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "rss": rss,
    }


def run_bench(*, messages: int, rate: int, latency_seconds: float, buffer: str) -> None:
    buffers = ["memory", "durable"] if buffer == "both" else [buffer]
    table = Table(title=f"wireway bench: tcp -> buffer -> file, {os.cpu_count()} cores")
    for col in ("buffer", "run", "messages", "msg/s", "p50 ms", "p99 ms", "peak RSS MB"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="wireway-bench-") as tmp:
        for buf in buffers:
            r = run_case(buf, messages, None, Path(tmp))
            table.add_row(
                buf,
                "full speed",
                str(r["delivered"]),
                f"{r['rate']:,.0f}",
                "-",
                "-",
                f"{r['rss']:.0f}",
            )
            n = int(rate * latency_seconds)
            r = run_case(buf, n, float(rate), Path(tmp))
            table.add_row(
                buf,
                f"{rate}/s offered",
                str(r["delivered"]),
                f"{r['rate']:,.0f}",
                f"{r['p50']:.2f}",
                f"{r['p99']:.2f}",
                f"{r['rss']:.0f}",
            )
    console.print(table)
