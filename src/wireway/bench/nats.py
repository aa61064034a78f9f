"""`wireway bench nats`: JetStream -> durable buffer -> JetStream on the local NATS server.

A real `wireway run` subprocess pulls from a durable consumer of an input stream
(acknowledging each message once it is in the durable buffer) and publishes to an
output stream, awaiting each PubAck. Both streams are the bench's own (file storage,
deleted after).

- Full speed: N messages are stored in the input stream before wireway starts; the
  rate is how fast they reach the output stream (its message count, polled), from
  the first to the last.
- Latency: a fresh instance at half that rate, paced in 1 ms slots; each message
  carries its publish time, and a core subscriber of the output subject (it sees a
  message when wireway publishes it to the stream) takes the difference.

CPU is the wireway process's (user + system) per second of the run, in % of one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig
from rich.table import Table

from wireway.bench.common import console, cpu_seconds, free_port, pct, peak_rss_mb, wait_port

PATTERN = """
pattern: {{name: bench-nats, type: message-bus}}
interfaces:
  input:
    - {{type: nats, url: "{url}", jetstream: true, subject: "{prefix}.in", stream: {prefix}_IN,
       durable: bench, create: true, batch: {batch}}}
  output:
    - {{type: nats, url: "{url}", jetstream: true, subject: "{prefix}.out", stream: {prefix}_OUT,
       payload_only: true}}
settings: {{buffer: durable, buffer_size: 50000, batch_size: {batch}, timeout: 30}}
"""


class Instance:
    """A `wireway run` of the bench pattern, with its CPU time measured from `mark()`."""

    def __init__(self, workdir: Path, url: str, prefix: str, batch: int) -> None:
        workdir.mkdir()
        path = workdir / "bench.yaml"
        path.write_text(PATTERN.format(url=url, prefix=prefix, batch=batch))
        self.http = free_port()
        cmd = [sys.executable, "-m", "wireway", "run", str(path), "--data-dir", str(workdir / "data")]
        cmd += ["--http", f"127.0.0.1:{self.http}", "--log-level", "WARNING"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        self.cpu0 = 0.0
        self.t0 = 0.0

    def mark(self) -> None:
        self.cpu0, self.t0 = cpu_seconds(self.proc.pid), time.monotonic()

    def cpu_percent(self) -> float:
        elapsed = time.monotonic() - self.t0
        return 100 * (cpu_seconds(self.proc.pid) - self.cpu0) / elapsed if elapsed > 0 else 0.0

    def stop(self) -> float:
        """Stop it; its peak RSS in MB."""
        rss = peak_rss_mb(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(30)
        return rss


async def fresh_streams(nc: Client, prefix: str) -> None:
    js = nc.jetstream()
    for suffix in ("in", "out"):
        config = StreamConfig(
            name=f"{prefix}_{suffix.upper()}", subjects=[f"{prefix}.{suffix}"], storage=StorageType.FILE
        )
        await js.add_stream(config)


async def drop_streams(nc: Client, prefix: str) -> None:
    js = nc.jetstream()
    for suffix in ("IN", "OUT"):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(f"{prefix}_{suffix}")


async def publish(nc: Client, subject: str, n: int, rate: float | None) -> None:
    """N messages to the input stream; with `rate`, paced in 1 ms slots."""
    js = nc.jetstream()
    start = time.time()
    sent = 0
    chunk = 1000 if rate is None else max(1, int(rate / 1000))
    while sent < n:
        k = min(chunk, n - sent)
        if rate is not None:
            delay = start + sent / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        now = time.time()
        bodies = [b'{"seq":%d,"t":%.6f,"device":"bench"}' % (sent + i, now) for i in range(k)]
        if rate is None:  # stored before wireway starts: every PubAck awaited
            await asyncio.gather(*[await js.publish_async(subject, body) for body in bodies])
        else:  # paced: a plain publish the stream takes (its PubAcks would load this loop)
            for body in bodies:
                await nc.publish(subject, body)
        sent += k
    await nc.flush()


async def pulling(nc: Client, prefix: str) -> None:
    """Wait until wireway's consumer has a pull request waiting on the server."""
    js = nc.jetstream()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            if (await js.consumer_info(f"{prefix}_IN", "bench")).num_waiting:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("wireway's JetStream consumer did not start pulling in 30 s")


async def out_count(nc: Client, prefix: str) -> int:
    info = await nc.jetstream().stream_info(f"{prefix}_OUT")
    return int(info.state.messages)


async def full_speed(url: str, n: int, batch: int, workdir: Path) -> dict[str, float]:
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(url)
    try:
        await fresh_streams(nc, prefix)
        with console.status(f"storing {n:,} messages in {prefix}_IN"):
            await publish(nc, f"{prefix}.in", n, None)
        instance = Instance(workdir / "full", url, prefix, batch)
        try:
            wait_port(instance.http)
            instance.mark()
            first = last = 0.0
            first_count = count = 0
            deadline = time.monotonic() + 300
            with console.status("wireway: JetStream -> durable buffer -> JetStream"):
                while count < n and time.monotonic() < deadline:
                    count = await out_count(nc, prefix)
                    now = time.monotonic()
                    if count and not first:
                        first, first_count = now, count
                    last = now
                    await asyncio.sleep(0.02)
            cpu = instance.cpu_percent()
        finally:
            rss = instance.stop()
        rate = (count - first_count) / (last - first) if last > first else 0.0
        return {"delivered": count, "rate": rate, "cpu": cpu, "rss": rss}
    finally:
        await drop_streams(nc, prefix)
        await nc.close()


async def at_rate(url: str, rate: float, seconds: float, batch: int, workdir: Path) -> dict[str, float]:
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    n = max(1, int(rate * seconds))
    nc = await nats.connect(url)
    latencies: list[float] = []
    decode = msgspec.json.Decoder().decode

    arrived = asyncio.Event()

    async def seen(msg: Msg) -> None:
        latencies.append(time.time() - decode(msg.data)["t"])
        if len(latencies) >= n:
            arrived.set()

    try:
        await fresh_streams(nc, prefix)
        await nc.subscribe(f"{prefix}.out", cb=seen)
        instance = Instance(workdir / "rate", url, prefix, batch)
        try:
            wait_port(instance.http)
            await pulling(nc, prefix)
            instance.mark()
            t0 = time.monotonic()
            with console.status(f"{rate:,.0f} msg/s offered for {seconds:g} s"):
                await publish(nc, f"{prefix}.in", n, rate)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(120):
                        await arrived.wait()
            elapsed = time.monotonic() - t0
            cpu = instance.cpu_percent()
        finally:
            rss = instance.stop()
        lat = sorted(latencies)
        return {
            "delivered": len(lat),
            "rate": len(lat) / elapsed if elapsed > 0 else 0.0,
            "p50": pct(lat, 0.50) if lat else float("nan"),
            "p99": pct(lat, 0.99) if lat else float("nan"),
            "cpu": cpu,
            "rss": rss,
        }
    finally:
        await drop_streams(nc, prefix)
        await nc.close()


async def bench(url: str, messages: int, rate: int | None, seconds: float, batch: int) -> list[Any]:
    rows: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="wireway-bench-nats-") as tmp:
        full = await full_speed(url, messages, batch, Path(tmp))
        rows.append(("full speed", full, None))
        offered = float(rate or max(100, int(full["rate"] / 2)))
        rows.append((f"{offered:,.0f}/s offered", await at_rate(url, offered, seconds, batch, Path(tmp)), 1))
    return rows


def run_nats_bench(*, url: str, messages: int, rate: int | None, latency_seconds: float, batch: int) -> None:
    try:
        rows = asyncio.run(bench(url, messages, rate, latency_seconds, batch))
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        raise RuntimeError(f"nats at {url}: {exc}") from exc
    table = Table(
        title=f"wireway bench nats: JetStream -> durable buffer -> JetStream, {os.cpu_count()} cores"
    )
    for col in ("run", "messages", "msg/s", "p50 ms", "p99 ms", "wireway CPU %", "peak RSS MB"):
        table.add_column(col, justify="right")
    for label, r, timed in rows:
        table.add_row(
            label,
            f"{r['delivered']:,}",
            f"{r['rate']:,.0f}",
            f"{r['p50']:.1f}" if timed else "-",
            f"{r['p99']:.1f}" if timed else "-",
            f"{r['cpu']:.0f}",
            f"{r['rss']:.0f}",
        )
    console.print(table)
    console.print(
        "Full speed: messages stored in the input stream first, counted in the output stream. "
        "Latency: publish -> wireway's publish to the output stream, at half the full-speed rate "
        "(or --rate)."
    )
