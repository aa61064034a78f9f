"""Per-reading CPU of the sensor DELIVERY hot path, without servers.

Times, in microseconds per reading (best of a few bounded rounds, so a noisy
neighbour on a shared machine inflates the figures less), on enriched readings like
the built-in application hands its outputs (`wireway bench sensor` bodies, a
`received_at` shared by each batch, 100 devices):

- sql rows: `Plan.rows` for the `sensor_readings` columns of sensors.yaml
  (PostgreSQL dialect, the table described as `describe()` would), per batch as
  `SqlOutput.write` does
- alerts: the `sensor_alerts` step (`SensorAlerts.process`) with the default rules; a
  tenth of the devices are `secure_area: true` and the clock is outside business
  hours, so presence alerts open and repeat (and are emitted as messages)
- state: `Devices.record` (a database that does nothing), `OccupancyTracker.update`
  and the whole `SensorStateOutput.write`

With `--pg URL` also the PostgreSQL insert (`SqlOutput.insert`) into a scratch
schema that is dropped afterwards (client CPU of this process only).

Run: .venv/bin/python benchmarks/delivery_hotpath.py [--readings N] [--rounds R] [--pg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import yaml

from wireway.apps.sensor_ingest import metrics
from wireway.apps.sensor_ingest.app import READINGS_TYPE, SensorApp
from wireway.apps.sensor_ingest.devices import Devices
from wireway.apps.sensor_ingest.occupancy import OccupancyTracker
from wireway.apps.sensor_ingest.state_output import SensorStateConfig, SensorStateOutput
from wireway.apps.sensor_ingest.steps import SensorAlerts, SensorAlertsConfig
from wireway.bench.load import reading_json
from wireway.connectors.sql.columns import ColumnInfo
from wireway.connectors.sql.config import SqlOutputConfig
from wireway.connectors.sql.plan import Plan
from wireway.envelope import Message, canonical_timestamp, stable_id
from wireway.processors.base import EngineView

BATCH = 500  # the application's batch_size
DEVICES = 100
SECURE_EVERY = 10  # every tenth device is in a secure area
PATTERN = Path(__file__).parents[1] / "src/wireway/apps/sensor_ingest/patterns/sensors.yaml"
# a Saturday night (UTC): outside the default business hours
NIGHT = datetime(2026, 11, 28, 23, 0, tzinfo=UTC).timestamp()

# what describe() reports for the PostgreSQL sensor_readings table (migration 1)
READINGS_TABLE = {
    "id": ColumnInfo("id", "int", True),
    "device_id": ColumnInfo("device_id", "text", True, 100),
    "timestamp": ColumnInfo("timestamp", "timestamptz", True),
    "received_at": ColumnInfo("received_at", "timestamptz", True),
    "sensor_type": ColumnInfo("sensor_type", "text", True, 50),
    "data": ColumnInfo("data", "json", True),
    "metadata": ColumnInfo("metadata", "json", False),
    "created_at": ColumnInfo("created_at", "timestamptz", False),
    "message_id": ColumnInfo("message_id", "text", True, 64),
}


def outputs_config() -> dict[str, dict[str, Any]]:
    """The output blocks of sensors.yaml by type (environment defaults left as text)."""
    pattern = yaml.safe_load(PATTERN.read_text())
    return {o["type"]: o for o in pattern["interfaces"]["output"]}


def sql_config(url: str) -> SqlOutputConfig:
    """The storage output of sensors.yaml, writing to `url`."""
    options = {
        k: v
        for k, v in outputs_config()["sql"].items()
        if k not in ("type", "name", "parallel", "when", "schema")
    }
    return msgspec.convert({**options, "url": url}, SqlOutputConfig)


def metadata_of(device: int) -> dict[str, Any]:
    if device % SECURE_EVERY == 0:
        return {"location": f"vault-{device}", "secure_area": True}
    return {}


def batches(n: int, start: float) -> list[list[Message]]:
    """n enriched readings (1 ms apart) in batches of BATCH, each batch with one received_at."""
    out: list[list[Message]] = []
    for b in range(0, n, BATCH):
        arrived = datetime.fromtimestamp(start + b / 1000 + 0.05, UTC)
        received_at = arrived.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        batch = []
        for i in range(b, min(n, b + BATCH)):
            payload = msgspec.json.decode(reading_json(i % DEVICES, start + i / 1000, i))
            payload["received_at"] = received_at
            payload["device_metadata"] = metadata_of(i % DEVICES)
            msg_id = stable_id(payload["device_id"], canonical_timestamp(payload["timestamp"]))
            batch.append(Message(msg_id, received_at, payload, source="mqtt", message_type=READINGS_TYPE))
        out.append(batch)
    return out


def best_us(
    fn: Callable[[], object], count: int, rounds: int, setup: Callable[[], object] = lambda: None
) -> float:
    """The fastest round's CPU time per item, in microseconds (`setup` untimed before each)."""
    best = float("inf")
    for _ in range(rounds):
        setup()
        t0 = time.process_time_ns()
        fn()
        best = min(best, (time.process_time_ns() - t0) / count / 1000)
    return best


async def abest_us(fn: Callable[[], Awaitable[object]], count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time_ns()
        await fn()
        best = min(best, (time.process_time_ns() - t0) / count / 1000)
    return best


def sql_plan(dialect: str = "postgresql") -> Plan:
    return Plan(sql_config("postgresql://bench@127.0.0.1/bench"), dialect, READINGS_TABLE)


def sql_rows(plan: Plan, data: Sequence[list[Message]]) -> int:
    """What SqlOutput.write does before the insert: rows per message, one `now` per batch."""
    total = 0
    for batch in data:
        now = datetime.now(UTC)
        good = [(i, plan.rows(msg, now)) for i, msg in enumerate(batch)]
        total += len([row for _, rows in good for row in rows])
    return total


class NullDb:
    """A Database that takes statements and does nothing (for the device registry)."""

    dialect = "postgresql"
    own_schema = "wireway"

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        return None

    async def execute(self, sql: str, *args: Any) -> str:
        return "INSERT 0 1"


class Clock:
    """Outside business hours, advancing with the real clock."""

    def __init__(self) -> None:
        self.start = time.time()

    def __call__(self) -> float:
        return NIGHT + (time.time() - self.start)


def alerts_step() -> SensorAlerts:
    """The sensor_alerts step of sensors.yaml."""
    steps = yaml.safe_load(PATTERN.read_text())["processors"]
    options = next(step["sensor_alerts"] for step in steps if "sensor_alerts" in step)
    step = SensorAlerts(msgspec.convert(options, SensorAlertsConfig), base_dir=Path("."))
    step.engine.clock = Clock()
    return step


def sensor_app() -> SensorApp:
    """An application service that is not started, its device registry on a NullDb."""

    async def publish(messages: list[Message]) -> None:
        return None

    app = SensorApp(EngineView(Path("."), ("127.0.0.1", 0), lambda: 0, lambda: 0, publish))
    app.devices = Devices(NullDb())  # type: ignore[arg-type]
    return app


def state_output(app: SensorApp) -> SensorStateOutput:
    pattern = SimpleNamespace(monitoring=SimpleNamespace(per_device=False))
    output = SensorStateOutput(SensorStateConfig(), SimpleNamespace(name="state"), pattern)
    output.use_service(app)
    output.saved = time.monotonic()
    return output


async def pg_insert(url: str, data: Sequence[list[Message]], rounds: int) -> float:
    """SqlOutput.insert per reading (rows already built), into a scratch schema."""
    from wireway.apps.sensor_ingest.migrations import migrate
    from wireway.connectors.sql.columns import describe
    from wireway.connectors.sql.db import open_database

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = open_database(url, data_dir=Path("."))
    await admin.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    db = open_database(f"{url}{sep}search_path={schema}", data_dir=Path("."))
    try:
        await migrate(db)
        table = await describe(db, f"{schema}.sensor_readings")
        config = sql_config(url)
        plan = Plan(config, db.dialect, table)
        # rows grouped by message, as SqlOutput.write hands them to insert()
        groups = [[plan.rows(msg, datetime.now(UTC)) for msg in batch] for batch in data]
        from wireway.connectors.sql.write import RowWriter

        writer = RowWriter(db)

        async def insert_all() -> None:
            await db.execute(f"TRUNCATE {schema}.sensor_readings")
            for messages in groups:
                await writer.insert(plan, messages)

        count = sum(len(b) for b in data)
        return await abest_us(insert_all, count, rounds)
    finally:
        await db.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def main_async(args: argparse.Namespace) -> None:
    n, rounds = max(BATCH, args.readings), max(1, args.rounds)
    start = time.time() - n / 1000
    data = batches(n, start)
    count = sum(len(b) for b in data)
    results: dict[str, float] = {}

    plans = [sql_plan()]  # a new plan each round: nothing remembered from the last one

    def new_plan() -> None:
        plans[0] = sql_plan()

    results["sql Plan.rows (3 rows/reading)"] = best_us(
        lambda: sql_rows(plans[0], data), count, rounds, new_plan
    )

    alerts = alerts_step()

    async def alert_all() -> None:
        for batch in data:
            await alerts.process(batch)

    results["alerts SensorAlerts.process"] = await abest_us(alert_all, count, rounds)

    app = sensor_app()
    state = state_output(app)
    devices = app.devices
    assert devices is not None

    async def record_all() -> None:
        for batch in data:
            await devices.record([m.payload for m in batch])

    results["state Devices.record"] = await abest_us(record_all, count, rounds)

    tracker = OccupancyTracker(hold_seconds=30)

    def occupy_all() -> None:
        for batch in data:
            for msg in batch:
                tracker.update(msg.payload)
            tracker.tick()

    results["state OccupancyTracker.update+tick"] = best_us(occupy_all, count, rounds)

    async def state_all() -> None:
        for batch in data:
            await state.write(batch)

    results["state SensorStateOutput.write"] = await abest_us(state_all, count, rounds)

    if args.pg:
        results["sql SqlOutput.insert (PostgreSQL, client CPU)"] = await pg_insert(args.pg, data, rounds)

    width = max(len(k) for k in results)
    print(f"{count} readings, batches of {BATCH}, {DEVICES} devices, best of {rounds} rounds")
    for name, us in results.items():
        print(f"  {name:<{width}}  {us:7.2f} us/reading")
    metrics.INGESTED.setup(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--readings", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg", default="", help="postgresql:// URL: also time the insert")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
