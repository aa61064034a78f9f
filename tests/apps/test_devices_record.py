"""The device registry folds batches the same way in PostgreSQL (one statement) and SQLite."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg

from conftest import need_service
from wireway.apps.sensor_ingest.devices import Devices
from wireway.apps.sensor_ingest.migrations import migrate
from wireway.connectors.sql.db import Database, open_database

PG = "postgresql://postgres@127.0.0.1:5432/test"


def reading(device: str, ts: str, **sensors: Any) -> dict[str, Any]:
    return {"device_id": device, "timestamp": ts, "sensors": sensors}


BATCHES = [
    [
        reading("a", "2025-10-16T18:33:58Z", pir={"motion_detected": True}),
        reading("a", "2025-10-16T18:33:50.5Z", mq134={"gas_concentration": 1}),
        reading("b", "2025-10-16T18:00:00+02:00", pir={"motion_detected": False}),
    ],
    # a later batch: one newer reading, one older than what is stored (latest unchanged)
    [
        reading("a", "2025-10-16T18:34:00.000001Z", pir={"motion_detected": False}),
        reading("b", "2025-10-16T15:00:00Z", mq134={"gas_concentration": 9}),
    ],
]


async def fold(db: Database) -> list[dict[str, Any]]:
    await migrate(db)
    devices = Devices(db)
    for batch in BATCHES:
        await devices.record([dict(r) for r in batch])
    out = []
    for device_id in ("a", "b"):
        row = await devices.get(device_id)
        assert row is not None
        out.append({k: row[k] for k in ("device_id", "first_seen", "last_seen", "reading_count", "latest")})
    return out


async def test_postgresql_and_sqlite_agree(tmp_path: Path) -> None:
    need_service("postgresql", 5432)
    schema = f"wwdev_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG)
    await admin.execute(f"CREATE SCHEMA {schema}")
    pg = open_database(f"{PG}?search_path={schema}", data_dir=tmp_path, own_schema=schema)
    lite = open_database(f"sqlite:///{tmp_path}/devices.db", data_dir=tmp_path)
    try:
        got_pg, got_lite = await fold(pg), await fold(lite)
    finally:
        await pg.close()
        await lite.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
    a, b = got_pg
    assert a["reading_count"] == 3
    assert b["reading_count"] == 2
    assert a["latest"] == {"pir": {"motion_detected": False}, "mq134": {"gas_concentration": 1}}
    assert b["latest"] == {"pir": {"motion_detected": False}}  # the 15:00Z reading came late
    assert _instant(a["first_seen"]) == _instant("2025-10-16T18:33:50.5Z")
    assert _instant(b["first_seen"]) == _instant("2025-10-16T15:00:00Z")
    assert _instant(b["last_seen"]) == _instant("2025-10-16T16:00:00Z")
    for x, y in zip(got_pg, got_lite, strict=True):
        assert x["reading_count"] == y["reading_count"]
        assert x["latest"] == y["latest"]
        for key in ("first_seen", "last_seen"):
            assert _instant(x[key]) == _instant(y[key])


def _instant(value: Any) -> float:
    from wireway.envelope import parse_timestamp

    return value.timestamp() if hasattr(value, "timestamp") else parse_timestamp(str(value))
