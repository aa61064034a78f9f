"""What the sensor bench watches in PostgreSQL and on the disk while it runs."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from wireway.bench.common import console


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
