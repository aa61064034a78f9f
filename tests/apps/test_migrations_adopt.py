"""The readings set's V2 adopts a `sensor_readings` table the team created before wireway;
the application's own tables never take the place of a user's.

The table has the team's columns and indexes but no `message_id`; wireway must keep
its rows, give each a unique legacy id and then store, deduplicate and serve readings
as on a table it created itself. Both dialects, PostgreSQL in a schema of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sensor_support import PG, client, reading, sensor_engine, temp_schema

from wireway.apps.sensor_ingest.migrations import migrate, tables
from wireway.connectors.sql.db import Database, RejectedData, open_database
from wireway.connectors.sql.migrate import TableInTheWay
from wireway.errors import ConnectorError

# the team's table, exactly as their service created it, and its four indexes
TEAM_TABLE = {
    "postgresql": """CREATE TABLE sensor_readings (
  id BIGSERIAL PRIMARY KEY, device_id VARCHAR(100) NOT NULL, timestamp TIMESTAMPTZ NOT NULL,
  received_at TIMESTAMPTZ NOT NULL, sensor_type VARCHAR(50) NOT NULL, data JSONB NOT NULL,
  metadata JSONB, created_at TIMESTAMPTZ DEFAULT NOW())""",
    "sqlite": """CREATE TABLE sensor_readings (
  id INTEGER PRIMARY KEY AUTOINCREMENT, device_id VARCHAR(100) NOT NULL, timestamp TEXT NOT NULL,
  received_at TEXT NOT NULL, sensor_type VARCHAR(50) NOT NULL, data JSON_TEXT NOT NULL,
  metadata JSON_TEXT, created_at TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))""",
}
TEAM_INDEXES = {
    "idx_sensor_readings_device_id": "CREATE INDEX idx_sensor_readings_device_id ON sensor_readings (device_id)",
    "idx_sensor_readings_timestamp": "CREATE INDEX idx_sensor_readings_timestamp ON sensor_readings (timestamp)",
    "idx_sensor_readings_sensor_type": "CREATE INDEX idx_sensor_readings_sensor_type ON sensor_readings (sensor_type)",
    "idx_sensor_readings_data": "CREATE INDEX idx_sensor_readings_data ON sensor_readings USING GIN (data)",
}
OLD_ROWS: list[tuple[str, datetime, str, dict[str, Any]]] = [
    ("esp32-old", datetime(2025, 10, 1, 12, 0, tzinfo=UTC), "ld2410", {"presence": True, "distance": 80}),
    ("esp32-old", datetime(2025, 10, 1, 12, 0, tzinfo=UTC), "pir", {"motion_detected": False}),
    ("esp32-001", datetime(2025, 10, 16, 18, 0, tzinfo=UTC), "mq134", {"gas_concentration": 120}),
]
UNIQUE_KEY = "sensor_readings_message_id_sensor_type_key"


@pytest.fixture(params=["postgresql", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The storage URL of an empty database: a fresh PostgreSQL schema or a SQLite file."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/team.db"
        return
    async with temp_schema() as name:
        yield f"{PG}?search_path={name}"


def own_schema(storage: str) -> str:
    """The test's PostgreSQL schema holds wireway's own tables too (as sensor_engine
    arranges); SQLite: the default prefix."""
    _, found, rest = storage.partition("search_path=")
    return rest.split("&")[0] if found else "wireway"


@pytest.fixture
async def db(storage: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = open_database(storage, data_dir=tmp_path, own_schema=own_schema(storage))
    await database.open()
    try:
        yield database
    finally:
        await database.close()


async def create_team_table(db: Database) -> None:
    """The team's table with its indexes (no GIN on SQLite) and a few of its rows."""
    await db.execute(TEAM_TABLE[db.dialect])
    for name, statement in TEAM_INDEXES.items():
        if db.dialect == "postgresql" or name != "idx_sensor_readings_data":
            await db.execute(statement)
    await db.executemany(
        "INSERT INTO sensor_readings (device_id, timestamp, received_at, sensor_type, data, metadata)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(device, at, at, kind, data, {"room": "lab"}) for device, at, kind, data in OLD_ROWS],
    )


async def indexes(db: Database) -> dict[str, str | None]:
    """Index name -> definition, for the indexes of sensor_readings."""
    if db.dialect == "postgresql":
        rows = await db.fetch(
            "SELECT indexname AS name, indexdef AS sql FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = 'sensor_readings'"
        )
    else:
        rows = await db.fetch(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sensor_readings'"
        )
    return {r["name"]: r["sql"] for r in rows}


async def snapshot(db: Database) -> tuple[Any, ...]:
    """What a migration could change: indexes, columns, recorded versions."""
    if db.dialect == "postgresql":
        columns = await db.fetch(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'sensor_readings'"
            " ORDER BY ordinal_position"
        )
    else:
        columns = await db.fetch("SELECT name, type, \"notnull\" FROM pragma_table_info('sensor_readings')")
    versions = await db.fetch(
        f"SELECT scope, version, name, applied_at FROM {db.own_table('migrations')} ORDER BY scope, version"
    )
    return await indexes(db), columns, versions


async def test_the_app_adopts_the_teams_table(db: Database, storage: str, tmp_path: Path) -> None:
    """The whole application on the team's table: old rows kept with unique legacy ids,
    a new reading stored once (409 again), and both listed by the readings API."""
    await create_team_table(db)
    async with sensor_engine(tmp_path, env={"WIREWAY_STORAGE": storage}) as engine, client(engine) as c:
        assert (await c.post("/api/v1/sensor-data", json=reading())).status_code == 202

        async def count() -> int:
            return int(await db.fetchval("SELECT count(*) FROM sensor_readings"))

        for _ in range(200):
            if await count() == len(OLD_ROWS) + 3:
                break
            await asyncio.sleep(0.05)
        assert await count() == len(OLD_ROWS) + 3
        rows = await db.fetch(
            "SELECT id, device_id, sensor_type, data, metadata, message_id FROM sensor_readings ORDER BY id"
        )
        old, new = rows[: len(OLD_ROWS)], rows[len(OLD_ROWS) :]
        assert [(r["device_id"], r["sensor_type"], r["data"], r["metadata"]) for r in old] == [
            (device, kind, data, {"room": "lab"}) for device, _, kind, data in OLD_ROWS
        ]
        assert [r["message_id"] for r in old] == [f"legacy-{r['id']}" for r in old]
        assert sorted(r["sensor_type"] for r in new) == ["ld2410", "mq134", "pir"]
        assert len({r["message_id"] for r in new}) == 1
        assert new[0]["message_id"] not in {r["message_id"] for r in old}

        assert (await c.post("/api/v1/sensor-data", json=reading())).status_code == 409
        page = (await c.get("/api/v1/readings", params={"limit": 1000})).json()
        assert sorted(r["id"] for r in page["readings"]) == [r["id"] for r in rows]
        assert {r["message_id"] for r in page["readings"]} == {r["message_id"] for r in rows}
        assert await count() == len(OLD_ROWS) + 3

    # a redelivery is ignored by the unique index the adoption made, whether the
    # INSERT names the key (inference) or not (what the sql output writes)
    row = rows[-1]
    at = datetime(2025, 10, 16, 18, 33, 58, tzinfo=UTC)
    insert = (
        "INSERT INTO sensor_readings (device_id, timestamp, received_at, sensor_type, data, message_id)"
        " VALUES ($1, $2, $2, $3, $4, $5)"
    )
    args: tuple[Any, ...] = (row["device_id"], at, row["sensor_type"], {}, row["message_id"])
    assert (
        await db.execute(insert + " ON CONFLICT (message_id, sensor_type) DO NOTHING", *args) == "INSERT 0 0"
    )
    assert await db.execute(insert + " ON CONFLICT DO NOTHING", *args) == "INSERT 0 0"
    with pytest.raises(RejectedData):
        await db.execute(insert, *args)
    legacy: tuple[Any, ...] = (old[0]["device_id"], at, old[0]["sensor_type"], {}, old[0]["message_id"])
    assert (
        await db.execute(insert + " ON CONFLICT (message_id, sensor_type) DO NOTHING", *legacy)
        == "INSERT 0 0"
    )
    assert await db.fetchval("SELECT count(*) FROM sensor_readings") == len(OLD_ROWS) + 3

    # the team's indexes are still there, beside the unique key
    names = set(await indexes(db))
    assert {n for n in TEAM_INDEXES if db.dialect == "postgresql" or n != "idx_sensor_readings_data"} <= names
    assert UNIQUE_KEY in names


async def test_a_fresh_database_gets_the_indexes_once(db: Database) -> None:
    """On an empty database migrate creates the table with its indexes and unique key
    (V2 adds no second one); running it again is a no-op."""
    await migrate(db)
    found = await indexes(db)
    common = {
        "idx_sensor_readings_device_id",
        "idx_sensor_readings_timestamp",
        "idx_sensor_readings_sensor_type",
    }
    if db.dialect == "postgresql":
        assert set(found) == common | {"idx_sensor_readings_data", UNIQUE_KEY, "sensor_readings_pkey"}
        assert "USING gin (data)" in str(found["idx_sensor_readings_data"])
        assert "UNIQUE INDEX" in str(found[UNIQUE_KEY])
        assert "(message_id, sensor_type)" in str(found[UNIQUE_KEY])
        # V1's constraint, not a plain index: V2 found the column and did nothing
        assert (
            await db.fetchval(
                "SELECT count(*) FROM pg_constraint WHERE conname = $1"
                " AND conrelid = 'sensor_readings'::regclass AND contype = 'u'",
                UNIQUE_KEY,
            )
            == 1
        )
    else:  # V1's UNIQUE is SQLite's automatic index; V2 made no second one
        assert set(found) == common | {"sqlite_autoindex_sensor_readings_1"}
    before = await snapshot(db)
    assert [(v["scope"].split(":")[0], v["version"]) for v in before[2]] == [
        ("sensor_app", 1),
        ("sensor_app", 2),
        ("sensor_readings", 1),
        ("sensor_readings", 2),
    ]
    await migrate(db)
    assert await snapshot(db) == before


async def test_the_apps_tables_stay_apart_from_a_users(storage: str, tmp_path: Path) -> None:
    """A user's `devices` table where the user's tables are is left alone: the app's own
    tables live in the `schema` option's PostgreSQL schema, or under its prefix in SQLite."""
    async with contextlib.AsyncExitStack() as stack:
        if storage.startswith("postgresql"):
            own = await stack.enter_async_context(temp_schema())  # apart from the search_path
        else:
            own = "wireway"
        db = open_database(storage, data_dir=tmp_path, own_schema=own)
        stack.push_async_callback(db.close)
        await db.execute("CREATE TABLE devices (name TEXT PRIMARY KEY, owner TEXT)")
        await db.execute("INSERT INTO devices (name, owner) VALUES ('printer', 'ops')")
        await migrate(db)
        names = tables(db)
        assert names.devices == (f"{own}.devices" if db.dialect == "postgresql" else "wireway_devices")
        await db.execute(f"INSERT INTO {names.devices} (device_id) VALUES ('esp32-001')")
        assert await db.fetch("SELECT name, owner FROM devices") == [{"name": "printer", "owner": "ops"}]
        assert await db.fetchval(f"SELECT count(*) FROM {names.devices}") == 1


async def test_a_users_table_in_the_apps_place_is_a_clear_error(db: Database) -> None:
    """A table the app would create that is already there and not the app's stops migrate
    before any statement: the error names the table and the option; nothing is created."""
    taken = tables(db).alerts
    await db.execute(f"CREATE TABLE {taken} (id TEXT PRIMARY KEY, note TEXT)")
    with pytest.raises(TableInTheWay, match=rf"table {re.escape(taken)} already exists.*`schema` option"):
        await migrate(db)
    await db.fetchval(f"SELECT count(*) FROM {taken}")  # the user's table, untouched
    with pytest.raises(ConnectorError):
        await db.fetchval(f"SELECT count(*) FROM {tables(db).devices}")
    # the readings set ran alone (its own scope), the app's set not at all
    scopes = [r["scope"] for r in await db.fetch(f"SELECT scope FROM {db.own_table('migrations')}")]
    assert all(scope.startswith("sensor_readings:") for scope in scopes)


async def test_a_users_migrations_table_in_the_way_is_a_clear_error(db: Database) -> None:
    """wireway's record of applied migrations cannot take the place of a user's table either."""
    record = db.own_table("migrations")
    if db.dialect == "postgresql":
        await db.execute(f"CREATE SCHEMA IF NOT EXISTS {db.own_schema}")
    await db.execute(f"CREATE TABLE {record} (id INTEGER PRIMARY KEY, applied TEXT)")
    with pytest.raises(TableInTheWay, match=rf"table {re.escape(record)} already exists"):
        await migrate(db)


async def test_the_app_does_not_start_on_a_users_table_in_its_place(tmp_path: Path) -> None:
    """The whole application: a user's `wireway_devices` in the SQLite storage stops the
    start with one clear sentence naming the table and the option (no crash mid-migration)."""
    storage = tmp_path / "store.db"
    lite = open_database(f"sqlite:///{storage}", data_dir=tmp_path)
    try:
        await lite.execute("CREATE TABLE wireway_devices (serial TEXT)")
    finally:
        await lite.close()
    with pytest.raises(TableInTheWay, match=r"table wireway_devices already exists.*`schema` option"):
        async with sensor_engine(tmp_path, env={"WIREWAY_STORAGE": f"sqlite:///{storage}"}):
            pass
