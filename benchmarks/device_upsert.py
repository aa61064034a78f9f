"""What the sensor state output's device upsert costs per reading, by batch size.

The state output folds each batch into one upsert of the devices it saw (first/last
seen, counts, latest values: `Devices.record`). Its cost is per batch, so per reading
it falls with the batch size; this is why the built-in pattern gives that output
`batch_size: 1000` and `linger: 0.1`. Readings as `wireway bench sensor` sends them
(100 devices), into a scratch schema made by the application's migrations (dropped
afterwards). Prints wall time per batch and CPU per reading of PostgreSQL (read from
/proc: it must run on this machine) and of the client.

Run: .venv/bin/python benchmarks/device_upsert.py [--readings N] [--batch B ...] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import msgspec
from pg_store import backend_cpu

from wireway.apps.sensor_ingest.devices import Devices
from wireway.apps.sensor_ingest.migrations import migrate
from wireway.bench.load import reading_json
from wireway.connectors.sql.db import open_database


async def main(url: str, readings: int, sizes: list[int]) -> None:
    schema = f"devupsert_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    db = open_database(f"{url}?search_path={schema}", data_dir=Path("."))
    try:
        await migrate(db)
        devices = Devices(db)
        for size in sizes:
            batches = [
                [
                    msgspec.json.decode(reading_json(i % 100, 1.7e9 + (k * size + i) * 0.001, i))
                    for i in range(size)
                ]
                for k in range(max(2, readings // size))
            ]
            await devices.record(batches[0])  # connections and statements ready
            pids = [
                r["pid"]
                for r in await admin.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = '' "
                    "AND datname = current_database() AND pid <> pg_backend_pid()"
                )
            ]
            server0, client0, t0 = sum(map(backend_cpu, pids)), time.process_time(), time.perf_counter()
            for batch in batches[1:]:
                await devices.record(batch)
            wall = time.perf_counter() - t0
            n = size * (len(batches) - 1)
            server = sum(map(backend_cpu, pids)) - server0
            print(
                f"batches of {size}: {wall / (len(batches) - 1) * 1000:.1f} ms a batch, "
                f"PostgreSQL {server / n * 1e6:.1f} us/reading, "
                f"client {(time.process_time() - client0) / n * 1e6:.1f} us/reading"
            )
    finally:
        await db.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--batch", type=int, action="append", help="readings a batch (repeatable)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    asyncio.run(main(args.pg, min(args.readings, 1_000_000), args.batch or [500, 1000, 2000]))
