"""PostgreSQL alone storing sensor readings the way the sql output does, without wireway.

Builds the batches of the built-in application (`wireway bench sensor` bodies, 500
readings a batch or `--batch`, three rows each) beforehand, then sends each batch the way the sql
output does: one text COPY (`--path copy`, what it uses first) or its fallback after
a conflict, one `INSERT ... SELECT ... FROM jsonb_array_elements($1) ON CONFLICT DO
NOTHING` (`--path json`) or the INSERT bound once per row (`--path insert`, for the
columns neither can carry), over `--connections` connections into a scratch schema made
by the application's migrations (dropped afterwards). Prints readings/s, the client's
CPU to encode the batches and the backends' CPU per reading (read from /proc:
PostgreSQL must run on this machine).

Small batches show why the sql output sends fewer than COPY_MIN_MESSAGES messages
as one INSERT: `--batch 1` and `--batch 4`, each `--path`, with the client's CPU
around the calls (asyncpg's COPY costs the client much more per call).

`--drop-index NAME` (repeatable) drops one of the table's indexes first, to see what
each costs PostgreSQL (idx_sensor_readings_data is the GIN index,
sensor_readings_message_id_sensor_type_key the unique key).

Run: .venv/bin/python benchmarks/pg_store.py [--readings N] [--connections C] [--path copy|json|insert]
     [--batch B] [--drop-index NAME ...] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from delivery_hotpath import batches, sql_config

from wireway.apps.sensor_ingest.migrations import migrate
from wireway.connectors.sql.columns import describe
from wireway.connectors.sql.db import open_database
from wireway.connectors.sql.plan import Plan
from wireway.connectors.sql.postgresql import setup_connection


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(url: str, readings: int, connections: int, path: str, size: int, drop: list[str]) -> None:
    schema = f"pgstore_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    db = open_database(f"{url}?search_path={schema}", data_dir=Path("."))
    try:
        await migrate(db)
        for name in drop:
            if name.endswith("_key"):  # a constraint's index goes with the constraint
                await admin.execute(f"ALTER TABLE {schema}.sensor_readings DROP CONSTRAINT {name}")
            else:
                await admin.execute(f"DROP INDEX {schema}.{name}")
        table = await describe(db, f"{schema}.sensor_readings")
        plan = Plan(sql_config(url), db.dialect, table)
        assert plan.from_json is not None, "sensor_readings takes the jsonb path"
        layout = plan.copy
        assert layout is not None, "sensor_readings takes text COPY"
        now = datetime.now(UTC)
        # the rows of each batch, grouped by message as SqlOutput.write hands them on
        messages = [m for batch in batches(readings, time.time() - 3600) for m in batch]
        groups = [[plan.rows(msg, now) for msg in messages[i : i + size]] for i in range(0, readings, size)]
        t = time.process_time()
        if path == "copy":
            documents: list[Any] = [layout.encode(messages) for messages in groups]
        elif path == "insert":
            documents = [[row for rows in messages for row in rows] for messages in groups]
        else:
            documents = [plan.json_rows([row for rows in messages for row in rows]) for messages in groups]
        encoding = time.process_time() - t
        conns = [
            await asyncpg.connect(url, server_settings={"search_path": schema}) for _ in range(connections)
        ]
        for c in conns:
            await setup_connection(c)  # the pool's JSON codecs (the insert path binds dicts)
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in conns]
        todo = iter(documents)

        async def worker(conn: asyncpg.Connection) -> None:
            for document in todo:
                if path == "copy":
                    await conn.copy_to_table(
                        "sensor_readings", columns=layout.names, source=memoryview(document), format="text"
                    )
                elif path == "insert":
                    async with conn.transaction():
                        await conn.executemany(plan.insert, document)
                else:
                    await conn.execute(plan.from_json, document)

        cpu0, t0, client0 = sum(map(backend_cpu, pids)), time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(c) for c in conns))
        wall, cpu = time.perf_counter() - t0, sum(map(backend_cpu, pids)) - cpu0
        calls = time.process_time() - client0
        print(
            f"{path}, {connections} connection(s), {readings:,} readings in batches of {size}"
            f"{', without ' + ', '.join(drop) if drop else ''}: "
            f"{readings / wall:,.0f} readings/s, client encoding {encoding * 1e6 / readings:.1f} us/reading, "
            f"client calls {calls * 1e6 / len(groups):.0f} us/batch, "
            f"PostgreSQL CPU {cpu * 1e6 / readings:.0f} us/reading"
        )
        for c in conns:
            await c.close()
    finally:
        await db.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=30_000)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--path", choices=["copy", "json", "insert"], default="copy")
    parser.add_argument("--batch", type=int, default=500, help="readings a batch")
    parser.add_argument("--drop-index", action="append", default=[], help="an index to drop first")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    readings, size = min(args.readings, 200_000), max(1, args.batch)
    asyncio.run(main(args.pg, readings, args.connections, args.path, size, args.drop_index))
