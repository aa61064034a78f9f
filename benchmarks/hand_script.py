"""The hand-written script wireway replaces, measured beside it on the same machine.

What issue 3's performance section compares wireway with: a script that subscribes at
QoS 1 with paho-mqtt (which PUBACKs on receipt, before anything is stored: no delivery
guarantee), decodes each reading with msgspec and stores its rows with one binary COPY
per batch (asyncpg, everything received since the last COPY, up to 5,000 readings) into
the team's original table (the DDL of the issue, with its four indexes and no unique
key). No validation, no buffer, no dedupe, no live clients, alerts or occupancy.

The driver publishes the same readings as `wireway bench sensor`'s sustained run (the
same publisher, a private Mosquitto with the same settings, full speed) and prints
readings/s end to end and CPU per 1,000 readings of the script and of PostgreSQL. This
machine's speed changes over the day, so run it right before or after the wireway
bench and compare the two in the same minute:

    .venv/bin/python benchmarks/hand_script.py --messages 100000
    .venv/bin/python benchmarks/hand_script.py --messages 20000 --rate 1000   # CPU at low load
    .venv/bin/wireway bench sensor --messages 100000 --rate 1000 --latency-seconds 10 --http-readings 40000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TABLE = """CREATE TABLE {schema}.sensor_readings (
  id BIGSERIAL PRIMARY KEY, device_id VARCHAR(100) NOT NULL, timestamp TIMESTAMPTZ NOT NULL,
  received_at TIMESTAMPTZ NOT NULL, sensor_type VARCHAR(50) NOT NULL, data JSONB NOT NULL,
  metadata JSONB, created_at TIMESTAMPTZ DEFAULT NOW());
CREATE INDEX ON {schema}.sensor_readings (device_id);
CREATE INDEX ON {schema}.sensor_readings (timestamp);
CREATE INDEX ON {schema}.sensor_readings (sensor_type);
CREATE INDEX ON {schema}.sensor_readings USING GIN (data);"""

COLUMNS = ["device_id", "timestamp", "received_at", "sensor_type", "data", "metadata"]
BATCH = 5000


async def sql(dsn: str, statement: str) -> None:
    """Run one statement on its own connection (the bench's schema, made and dropped)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def subscribe(mqtt_port: int, prefix: str, dsn: str, schema: str) -> None:
    """The script itself: prints the running count of stored readings after each COPY."""
    import asyncpg
    import msgspec
    import paho.mqtt.client as mqtt

    received: list[bytes] = []  # appended by paho's network thread
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hand-{prefix}")
    client.on_message = lambda _c, _u, msg: received.append(msg.payload)
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", mqtt_port)
    client.subscribe(f"{prefix}/sensors/+/data", qos=1)
    client.loop_start()
    decode, encode = msgspec.json.Decoder().decode, msgspec.json.Encoder().encode

    async def store() -> None:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        subscribed.wait(10)
        print("ready", flush=True)
        total = 0
        while True:
            if not received:
                await asyncio.sleep(0.005)
                continue
            batch = received[:BATCH]
            del received[: len(batch)]  # the other thread only appends
            now = datetime.now(UTC)
            records: list[tuple[Any, ...]] = []
            for payload in batch:
                r = decode(payload)
                ts = datetime.fromisoformat(r["timestamp"])
                for name, data in r["sensors"].items():
                    records.append((r["device_id"], ts, now, name, encode(data).decode(), None))
            await conn.copy_records_to_table("sensor_readings", records=records, columns=COLUMNS)
            total += len(batch)
            print(total, flush=True)

    asyncio.run(store())


def drive(messages: int, devices: int, dsn: str, rate: float | None = None) -> None:
    from rich.progress import Progress

    from wireway.bench.common import cpu_of, cpu_seconds, machine_busy
    from wireway.bench.load import Publisher
    from wireway.bench.sensor import start_broker

    schema = f"handbench_{uuid.uuid4().hex[:8]}"
    prefix = f"hand-{uuid.uuid4().hex[:6]}"
    asyncio.run(sql(dsn, f"CREATE SCHEMA {schema};" + TABLE.format(schema=schema)))
    try:
        with tempfile.TemporaryDirectory(prefix="wireway-hand-") as tmp:
            broker, port = start_broker(Path(tmp))
            script = subprocess.Popen(
                [sys.executable, __file__, "--subscribe", str(port), prefix, dsn, schema],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert script.stdout is not None
                if script.stdout.readline().strip() != "ready":
                    raise RuntimeError("the script did not start")
                stored = 0
                done = threading.Event()

                def follow() -> None:  # the script's running count, without polling the table
                    nonlocal stored
                    assert script.stdout is not None
                    for line in script.stdout:
                        stored = int(line)
                        if stored >= messages:
                            break
                    done.set()  # all stored, or the script ended

                threading.Thread(target=follow, daemon=True).start()
                cpu0, pg0 = cpu_seconds(script.pid), cpu_of("postgres")
                busy0, t0 = machine_busy(), time.time()
                with Progress(transient=True) as progress:
                    what = f"MQTT QoS 1 at {rate:,.0f}/s" if rate else "MQTT QoS 1, full speed"
                    task = progress.add_task(what, total=messages)
                    acked = Publisher(port).run(prefix, messages, devices, rate, progress, task)
                if not done.wait(600) or stored < messages:
                    raise RuntimeError(f"only {stored} of {messages} readings were stored in 600 s")
                wall = time.time() - t0
                cpu, pg_cpu = cpu_seconds(script.pid) - cpu0, cpu_of("postgres") - pg0
                busy = machine_busy() - busy0
            finally:
                script.kill()
                script.wait(10)
                broker.terminate()
                broker.wait(10)
        per = acked / 1000
        print(
            f"hand-written script, {acked:,} readings{f' offered at {rate:,.0f}/s' if rate else ''}: "
            f"{acked / wall:,.0f} readings/s; "
            f"CPU ms per 1,000 readings: script {cpu * 1000 / per:.0f}, "
            f"PostgreSQL {pg_cpu * 1000 / per:.0f}; "
            f"machine busy {busy / (wall * (os.cpu_count() or 1)):.0%}"
        )
    finally:
        asyncio.run(sql(dsn, f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--subscribe":
        subscribe(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rate", type=float, default=None, help="readings/s offered (default: full speed)")
    args = parser.parse_args()
    drive(min(args.messages, 1_000_000), args.devices, args.pg, args.rate)
