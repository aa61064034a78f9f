"""`wireway bench sensor`: MQTT QoS 1 -> durable buffer -> PostgreSQL, measured end to end.

A real `wireway run` (the built-in application) runs as a subprocess against the
local Mosquitto and PostgreSQL, storing into a fresh schema that is dropped after.
Latency is publish -> commit: each reading's `timestamp` is its publish time, and a
trigger on the bench table NOTIFYs it, which PostgreSQL delivers when the storing
transaction commits (see CommitWatch). Publish -> row written is shown beside it: the
bench schema's `created_at` defaults to clock_timestamp(), the moment the row is
written inside the storing transaction, before its commit.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wireway.bench.common import console, cpu_of, cpu_seconds, free_port, machine_busy, pct, peak_rss_mb
from wireway.bench.load import ADMIN, Publisher, http_load, reading_json
from wireway.bench.watch import CommitWatch, DiskProbe, checkpoint, pg
from wireway.observability import logging as log


def reference_ms() -> float:
    """CPU time of a fixed piece of work (decode, check and id 20,000 readings), best of 3.

    This machine's speed changes over the day: quoted beside the results, it hints
    whether a low figure is the machine's or wireway's.
    """
    from wireway.apps.sensor_ingest.reading import check_reading
    from wireway.envelope import canonical_timestamp, stable_id

    payloads = [reading_json(i % 100, 1.7e9 + i * 0.001, i) for i in range(20_000)]
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for raw in payloads:
            reading = msgspec.json.decode(raw)
            check_reading(reading)
            stable_id(reading["device_id"], canonical_timestamp(reading["timestamp"]))
        best = min(best, time.process_time() - t0)
    return best * 1000


BROKER_CONF = """listener {port} 127.0.0.1
allow_anonymous true
user root
persistence false
# a fast burst must queue, not drop: Mosquitto's default keeps only 1,000 per client
max_queued_messages 0
max_inflight_messages 1000
"""


def start_broker(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private Mosquitto tuned for bursts, on a free loopback port."""
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(BROKER_CONF.format(port=port))
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def start_wireway(work: Path, env: dict[str, str], http: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "wireway",
        "run",
        "--data-dir",
        str(work / "data"),
        "--http",
        f"127.0.0.1:{http}",
        "--log-level",
        "WARNING",
    ]
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=open(work / "wireway.log", "wb"),  # noqa: SIM115  (the child owns it)
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"http://127.0.0.1:{http}/health", timeout=1, trust_env=False)
                .json()["services"]
                .get("mqtt")
                == "up"
            ):
                return proc
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"wireway did not come up; see {work / 'wireway.log'}")


_status_client: httpx.Client | None = None


def status_of(http: int) -> Any:
    """The instance's /status, over one kept-alive client: a new httpx client per poll
    (SSL context and all) took CPU from the run it measures."""
    global _status_client
    if _status_client is None:
        _status_client = httpx.Client(trust_env=False, timeout=5)
    return _status_client.get(f"http://127.0.0.1:{http}/status").json()


def wait_drained(http: int, timeout: float = 300) -> None:
    """Wait until every output buffer of the instance is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = status_of(http)
        if all(p["buffer_depth"] == 0 for p in status["patterns"]):
            return
        time.sleep(0.1)


def stored(http: int) -> int:
    """Readings the instance's storage output has committed (its /status)."""
    status = status_of(http)
    return sum(o["delivered"] for p in status["patterns"] for o in p["outputs"] if o["name"] == "storage")


def wait_rows(dsn: str, schema: str, http: int, readings: int, timeout: float) -> float:
    """When the instance had committed `readings` readings; then checks the rows are there.

    Polls wireway's /status, not the table: a count(*) of a table of hundreds of
    thousands of rows every 50 ms would take PostgreSQL CPU from the run it measures.
    """
    deadline = time.monotonic() + timeout
    while stored(http) < readings:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {stored(http)} of {readings} readings were stored in {timeout}s")
        time.sleep(0.05)
    done = time.time()
    rows = asyncio.run(pg(dsn, f"SELECT count(*) AS n FROM {schema}.sensor_readings"))[0]["n"]
    if rows < readings * 3:
        raise RuntimeError(f"the instance says {readings} readings are stored, the table has {rows} rows")
    return done


def run_sensor_bench(
    *, readings: int, rate: int, latency_seconds: float, devices: int, dsn: str, http_readings: int
) -> None:
    log.setup("WARNING")  # the publisher's MQTT session: warnings on stderr, no info lines
    schema = f"wwbench_{uuid.uuid4().hex[:8]}"
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(pg(dsn, f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # asyncpg's errors are not OSErrors: say which server, plainly
        raise RuntimeError(f"cannot use PostgreSQL at {dsn}: {exc}") from exc
    http = free_port()
    results: list[tuple[str, str]] = []
    reference = reference_ms()
    try:
        with tempfile.TemporaryDirectory(prefix="wireway-bench-") as tmp:
            work = Path(tmp)
            broker, broker_port = start_broker(work)
            env = {
                "WIREWAY_MQTT_URL": f"mqtt://127.0.0.1:{broker_port}",
                "WIREWAY_STORAGE": f"{dsn}?search_path={schema}",
                "WIREWAY_SCHEMA": schema,  # the app's own tables too: dropped with the schema
                "WIREWAY_ADMIN_KEY": ADMIN,
                "WIREWAY_MQTT_PREFIX": prefix,
                "WIREWAY_MQTT_CLIENT_ID": f"wireway-{prefix}",
                "WIREWAY_MQTT_ENABLED": "true",
            }
            try:
                proc = start_wireway(work, env, http)
            except BaseException:
                broker.terminate()  # not left running when wireway does not come up
                broker.wait(10)
                raise
            try:
                asyncio.run(
                    pg(
                        dsn,
                        f"ALTER TABLE {schema}.sensor_readings "
                        "ALTER COLUMN created_at SET DEFAULT clock_timestamp()",
                    )
                )
                pub = Publisher(broker_port)
                cols = (
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                )
                # 1. latency at the offered rate, in the steady state: after one second of
                # warm-up (connections, statements) that is not measured, and after a
                # CHECKPOINT: while PostgreSQL still writes out an earlier burst (a checkpoint
                # is spread over minutes), a disk may stall fsyncs for hundreds of ms
                n = int(rate * latency_seconds)
                checkpoint(dsn)
                with Progress(*cols, console=console, transient=True) as progress:
                    task = progress.add_task("warm-up", total=rate)
                    warm = pub.run(prefix, rate, devices, float(rate), progress, task)
                    wait_rows(dsn, schema, http, warm, 120)
                mark = asyncio.run(pg(dsn, f"SELECT max(id) AS m FROM {schema}.sensor_readings"))[0]["m"]
                watch = CommitWatch(dsn, schema)
                watch.start()
                watch.ready.wait(30)
                probe = DiskProbe(work)
                probe.start()
                latency_cpu0 = cpu_seconds(proc.pid)
                with Progress(*cols, console=console, transient=True) as progress:
                    task = progress.add_task(f"MQTT QoS 1 at {rate}/s", total=n)
                    acked2 = pub.run(prefix, n, devices, float(rate), progress, task)
                    wait_rows(dsn, schema, http, warm + acked2, 120)
                latency_cpu = cpu_seconds(proc.pid) - latency_cpu0
                disk = probe.stop()
                committed = watch.stop()
                rows = asyncio.run(
                    pg(
                        dsn,
                        "SELECT EXTRACT(EPOCH FROM (created_at - timestamp)) AS s "
                        f"FROM {schema}.sensor_readings WHERE id > {mark} AND sensor_type = 'pir'",
                    )
                )
                lat = sorted(float(r["s"]) for r in rows)
                if len(committed) < len(lat) * 0.99:
                    raise RuntimeError(f"heard {len(committed)} commits of {len(lat)} readings")
                latency = [
                    (f"p50 publish -> commit at {rate}/s (ms)", f"{pct(committed, 0.5):.1f}"),
                    (f"p99 publish -> commit at {rate}/s (ms)", f"{pct(committed, 0.99):.1f}"),
                    ("p50 / p99 publish -> row written (ms)", f"{pct(lat, 0.5):.1f} / {pct(lat, 0.99):.1f}"),
                    ("disk fsync p50 / p99 / max meanwhile (ms)", disk),
                    (
                        f"CPU ms per 1,000 readings at {rate}/s (wireway)",
                        f"{latency_cpu * 1000 / (max(acked2, 1) / 1000):.0f}",
                    ),
                ]
                # 2. sustained throughput (the machine's disk is then busy for a while with
                # PostgreSQL's checkpoint of the burst: fsyncs may stall for hundreds of ms)
                before = warm + acked2
                cpu0, t0 = cpu_seconds(proc.pid), time.time()
                pg0, busy0 = cpu_of("postgres"), machine_busy()
                with Progress(*cols, console=console, transient=True) as progress:
                    task = progress.add_task(f"MQTT QoS 1, {devices} devices, full speed", total=readings)
                    acked = pub.run(prefix, readings, devices, None, progress, task)
                    done = wait_rows(dsn, schema, http, before + acked, 600)
                if acked != readings:
                    console.print(f"the broker acknowledged {acked} of {readings} publishes")
                cpu = cpu_seconds(proc.pid) - cpu0
                pg_cpu, busy = cpu_of("postgres") - pg0, machine_busy() - busy0
                cores = os.cpu_count() or 1
                results += [
                    ("readings/s sustained (MQTT -> PostgreSQL)", f"{acked / (done - t0):,.0f}"),
                    ("rows/s", f"{acked * 3 / (done - t0):,.0f}"),
                    (
                        "CPU ms per 1,000 readings (wireway)",
                        f"{cpu * 1000 / (acked / 1000):.0f}",
                    ),
                    ("CPU ms per 1,000 readings (PostgreSQL)", f"{pg_cpu * 1000 / (acked / 1000):.0f}"),
                    ("machine busy during the run", f"{busy / ((done - t0) * cores):.0%} of {cores} cores"),
                ]
                results += latency
                wait_drained(http)  # alerts and devices may still be catching up
                # 3. HTTP
                url = f"http://127.0.0.1:{http}"
                single, ok1 = asyncio.run(http_load(url, http_readings // 4, 1, 64))
                batched, ok2 = asyncio.run(http_load(url, http_readings, 100, 32))
                results += [
                    ("HTTP single-reading POSTs/s", f"{single:,.0f} ({ok1} accepted)"),
                    ("HTTP readings/s in batches of 100", f"{batched:,.0f} ({ok2} accepted)"),
                    ("peak RSS MB (wireway)", f"{peak_rss_mb(proc.pid):.0f}"),
                ]
            finally:
                proc.terminate()
                proc.wait(60)
                broker.terminate()
                broker.wait(10)
    finally:
        asyncio.run(pg(dsn, f"DROP SCHEMA {schema} CASCADE"))
    table = Table(
        title=f"wireway bench sensor: {readings:,} readings, {devices} devices, {os.cpu_count()} cores"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in results:
        table.add_row(k, v)
    table.add_row("reference work before the run (lower: faster machine)", f"{reference:.0f} ms")
    console.print(table)
