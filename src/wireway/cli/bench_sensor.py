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
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wireway.cli.bench import free_port, peak_rss_mb
from wireway.cli.common import console

ADMIN = "bench-admin-key"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(name: str) -> float:
    """CPU seconds used so far by the running processes called `name` (e.g. postgres)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:  # gone meanwhile
            continue
        if head.split("(", 1)[-1] == name:
            fields = rest.split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def reference_ms() -> float:
    """CPU time of a fixed piece of work (decode, check and id 20,000 readings), best of 3.

    This machine's speed changes over the day: quoted beside the results, it hints
    whether a low figure is the machine's or wireway's.
    """
    from wireway.apps.sensor_ingest.reading import check_reading
    from wireway.envelope import canonical_timestamp, stable_id

    payloads = [body(i % 100, 1.7e9 + i * 0.001, i) for i in range(20_000)]
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for raw in payloads:
            reading = msgspec.json.decode(raw)
            check_reading(reading)
            stable_id(reading["device_id"], canonical_timestamp(reading["timestamp"]))
        best = min(best, time.process_time() - t0)
    return best * 1000


def pct(values: list[float], q: float) -> float:
    """The q-quantile of sorted seconds, in ms."""
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def body(device: int, t: float, seq: int) -> bytes:
    return msgspec.json.encode(
        {
            "device_id": f"bench-{device:03d}",
            "timestamp": datetime.fromtimestamp(t, UTC),  # RFC 3339, 8x cheaper than isoformat()
            "sensors": {
                "ld2410": {"presence": seq % 3 == 0, "distance": seq % 600, "energy": seq % 100},
                "pir": {"motion_detected": seq % 5 == 0},
                "mq134": {"gas_concentration": 100 + seq % 50, "unit": "ppm"},
            },
        }
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


class Publisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher on raw asyncio streams.

    A Python client library would cost more CPU than the system under test; this one
    builds PUBLISH packets directly and keeps `window` of them unacknowledged.
    """

    def __init__(self, port: int = 1883, window: int = 1000) -> None:
        self.port = port
        self.window = window

    async def _run(
        self, prefix: str, n: int, devices: int, rate: float | None, progress: Progress, task: Any
    ) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        client_id = f"bench-{uuid.uuid4().hex[:8]}"
        connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + _str(client_id)
        writer.write(b"\x10" + _varint(len(connect)) + connect)
        if (await reader.readexactly(4))[3] != 0:
            raise RuntimeError("the broker refused the connection")
        acked = 0
        room = asyncio.Event()  # set when the window has room again

        async def read_acks() -> None:
            # PUBACKs counted per read, not awaited one by one: the publisher is a load
            # generator sharing the machine with what it measures
            nonlocal acked
            buf = b""
            try:
                while acked < n:
                    data = await reader.read(65536)
                    if not data:
                        raise RuntimeError("the broker closed the connection")
                    buf += data
                    at = 0
                    while len(buf) - at >= 2 and len(buf) - at >= 2 + buf[at + 1]:
                        if buf[at] == 0x40:
                            acked += 1
                        at += 2 + buf[at + 1]
                    buf = buf[at:]
                    room.set()
            finally:
                room.set()  # a publisher waiting for room learns the reader stopped

        acks = asyncio.create_task(read_acks())
        start = time.monotonic()
        topics = [_str(f"{prefix}/sensors/bench-{d:03d}/data") for d in range(devices)]
        for i in range(n):
            if rate is not None:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            while i - acked >= self.window:
                room.clear()
                await room.wait()
                if acks.done():
                    acks.result()  # the reader failed: raise its error
            d = i % devices
            packet_id = (i % 65535) + 1
            rest = topics[d] + packet_id.to_bytes(2, "big") + body(d, time.time(), i)
            writer.write(b"\x32" + _varint(len(rest)) + rest)
            if i % 200 == 0:
                await writer.drain()
                progress.update(task, completed=i)
        await writer.drain()
        try:
            await asyncio.wait_for(acks, 600)
        finally:
            writer.write(b"\xe0\x00")  # DISCONNECT
            writer.close()
        progress.update(task, completed=n)
        return acked

    def run(
        self, prefix: str, n: int, devices: int, rate: float | None, progress: Progress, task: Any
    ) -> int:
        """Publish n readings (paced when `rate` is set); returns how many the broker acked."""
        return asyncio.run(self._run(prefix, n, devices, rate, progress, task))

    def close(self) -> None:
        return None


async def pg(dsn: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def checkpoint(dsn: str) -> None:
    """Have PostgreSQL, then the OS, write out what earlier runs left dirty (CHECKPOINT
    needs pg_checkpoint or a superuser)."""
    import asyncpg

    try:
        asyncio.run(pg(dsn, "CHECKPOINT"))
    except asyncpg.PostgresError as exc:
        console.print(f"no CHECKPOINT before the latency run ({exc}): a busy disk may show in p99")
    os.sync()


class DiskProbe(threading.Thread):
    """fdatasync of 4 KiB every 10 ms beside the outbox while the latency run goes on:
    the disk's own stalls, which a commit-before-ack pipeline cannot hide, shown next
    to the p99 they cause (this shared machine's disk stalls 50-400 ms at times)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        self.path = directory / "disk-probe"
        self.times: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while not self.halt.wait(0.01):
                os.pwrite(fd, b"x" * 4096, 0)
                t = time.perf_counter()
                os.fdatasync(fd)
                self.times.append(time.perf_counter() - t)
        finally:
            os.close(fd)

    def stop(self) -> str:
        self.halt.set()
        self.join(5)
        times = sorted(self.times)
        if not times:
            return "-"
        p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
        return f"{p50 * 1000:.1f} / {p99 * 1000:.1f} / {times[-1] * 1000:.0f}"


class CommitWatch(threading.Thread):
    """When each reading's rows became visible (committed) in PostgreSQL.

    A statement-level trigger on the bench's table NOTIFYs the publish times of the
    `pir` rows each statement wrote; PostgreSQL delivers a NOTIFY when its transaction
    commits, and this thread stamps its arrival: publish -> commit, as the issue asks
    (a row's `created_at` is written before its transaction's commit and fsync).
    """

    def __init__(self, dsn: str, schema: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.schema = dsn, schema
        self.channel = f"{schema}_commits"
        self.latencies: list[float] = []
        self.ready = threading.Event()
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def install(self) -> str:
        s = self.schema
        return (
            f"CREATE FUNCTION {s}.bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"PERFORM pg_notify('{self.channel}', COALESCE((SELECT string_agg(EXTRACT(EPOCH FROM "
            "timestamp)::text, ',') FROM (SELECT timestamp FROM new_rows WHERE sensor_type = 'pir' "
            "LIMIT 400) AS p), '')); RETURN NULL; END $$; "
            f"CREATE TRIGGER bench_commits AFTER INSERT ON {s}.sensor_readings "
            f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {s}.bench_notify()"
        )

    def uninstall(self) -> str:
        s = self.schema
        return f"DROP TRIGGER bench_commits ON {s}.sensor_readings; DROP FUNCTION {s}.bench_notify()"

    def run(self) -> None:
        try:
            asyncio.run(self._listen())
        except BaseException as exc:  # noqa: BLE001  (reported by stop())
            self.error = exc
            self.ready.set()

    async def _listen(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)

        def heard(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            now = time.time()
            self.latencies.extend(now - float(t) for t in payload.split(",") if t)

        try:
            await conn.add_listener(self.channel, heard)
            await conn.execute(self.install())
            self.ready.set()
            await asyncio.get_running_loop().run_in_executor(None, self.halt.wait)
            await conn.execute(self.uninstall())
        finally:
            await conn.close()

    def stop(self) -> list[float]:
        self.halt.set()
        self.join(30)
        if self.error is not None:
            raise RuntimeError(f"could not watch commits: {self.error}") from self.error
        return sorted(self.latencies)


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


async def http_load(url: str, n: int, batch: int, concurrency: int) -> tuple[float, int]:
    """POST n readings (singly or in batches of `batch`) over `concurrency` keep-alive
    connections, sending again after a 503; returns (accepted readings/s, accepted).

    A small raw HTTP/1.1 client: a Python HTTP library would be the bottleneck here.
    """
    from urllib.parse import urlparse

    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    path = "/api/v1/sensor-data" if batch == 1 else "/api/v1/sensor-data/batch"
    t_base = time.time() - 86400 * 30 - n * 0.001
    bodies: list[bytes] = []
    for i in range(0, n, batch):
        if batch == 1:
            bodies.append(body(i % 100, t_base + i * 0.001, i))
        else:
            items = [body(j % 100, t_base + j * 0.001, j) for j in range(i, min(i + batch, n))]
            bodies.append(b"[" + b",".join(items) + b"]")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {ADMIN}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    next_body = iter(range(len(bodies)))
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for k in next_body:
                data = bodies[k]
                for _ in range(2000):  # like a device: a 503 (buffer full) is sent again shortly
                    writer.write(head + str(len(data)).encode() + b"\r\n\r\n" + data)
                    status = int((await reader.readline()).split()[1])
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    if status != 503:
                        break
                    await asyncio.sleep(0.05)
                if status == 202:
                    accepted += batch if batch == 1 else min(batch, n - k * batch)
        finally:
            writer.close()

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted / (time.monotonic() - start), accepted


def run_sensor_bench(
    *, readings: int, rate: int, latency_seconds: float, devices: int, dsn: str, http_readings: int
) -> None:
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
                # is spread over minutes), this machine's disk stalls fsyncs for 50-400 ms
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
                with Progress(*cols, console=console, transient=True) as progress:
                    task = progress.add_task(f"MQTT QoS 1 at {rate}/s", total=n)
                    acked2 = pub.run(prefix, n, devices, float(rate), progress, task)
                    wait_rows(dsn, schema, http, warm + acked2, 120)
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
                ]
                # 2. sustained throughput (the machine's disk is then busy for a while with
                # PostgreSQL's checkpoint of the burst: fsyncs stall for 100-500 ms at times)
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
                pub.close()
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
