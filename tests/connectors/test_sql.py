"""The sql connector on real SQLite and PostgreSQL: database layer, migrations, `sql` output."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import free_port, need_service
from support import base_url, engine_from, eventually
from wireway.apps.sensor_ingest.migrations import migrate, tables
from wireway.config import load_pattern
from wireway.connectors.sql.db import (
    Database,
    Json,
    RejectedData,
    SqliteDatabase,
    open_database,
    sqlite_sql,
)
from wireway.envelope import Message
from wireway.errors import NotConnected
from wireway.runtime.dlq import DlqAdmin

PG = "postgresql://postgres@127.0.0.1:5432/test"


def own_schema(url: str) -> str:
    """Where a test keeps wireway's own tables: its PostgreSQL schema (the URL's
    search_path), so that tests running at once never share them; SQLite: the default."""
    _, found, rest = url.partition("search_path=")
    return rest.split("&")[0] if found else "wireway"


@asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL URL whose search_path (and application_name) is a new schema, dropped after."""
    need_service("postgresql", 5432)
    schema = f"wwtest_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG}?search_path={schema}&application_name={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL of each dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/test.db"
        return
    async with pg_schema() as url:
        yield url


@pytest.fixture
async def db(db_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = open_database(db_url, data_dir=tmp_path, own_schema=own_schema(db_url))
    await database.open()
    try:
        yield database
    finally:
        await database.close()


def test_urls_and_sqlite_rewriting(tmp_path: Path) -> None:
    """URLs pick the dialect and file; `$n`, casts and now() are rewritten outside literals."""
    assert open_database("", data_dir=tmp_path).url == f"sqlite:///{tmp_path}/wireway.db"
    rel = open_database("sqlite:///data/x.db", data_dir=tmp_path)
    assert isinstance(rel, SqliteDatabase)
    assert rel.path == str(Path.cwd() / "data/x.db")
    absolute = open_database("sqlite:////var/tmp/x.db", data_dir=tmp_path)
    assert isinstance(absolute, SqliteDatabase)
    assert absolute.path == "/var/tmp/x.db"
    pg = open_database("postgres://u:secret@db:5432/app", data_dir=tmp_path)
    assert pg.dialect == "postgresql"
    assert pg.url == "postgres://u:***@db:5432/app"
    with pytest.raises(ValueError, match="unsupported database URL"):
        open_database("mysql://x/y", data_dir=tmp_path)
    assert (
        sqlite_sql("SELECT '$1 now()', $1::jsonb, $12 FROM t WHERE at < now() -- $3")
        == "SELECT '$1 now()', ?1, ?12 FROM t WHERE at < strftime('%Y-%m-%dT%H:%M:%fZ','now') -- $3"
    )


async def test_migrations_create_the_tables_and_are_idempotent(db_url: str, tmp_path: Path) -> None:
    """Every table exists after migrate; running it again, or twice at once, changes nothing."""
    first, second = (
        open_database(db_url, data_dir=tmp_path, own_schema=own_schema(db_url)) for _ in range(2)
    )
    try:
        await asyncio.gather(migrate(first), migrate(second))  # concurrent starts
        await migrate(first)
        names = tables(first)
        for table in ("sensor_readings", names.devices, names.api_keys, names.alerts, names.occupancy_daily):
            assert await first.fetchval(f"SELECT count(*) FROM {table}") == 0
        rows = await first.fetch(
            f"SELECT scope, version, applied_at FROM {first.own_table('migrations')} ORDER BY scope, version"
        )
        # the readings set's scope names its table (in PostgreSQL with the table's schema)
        readings = "sensor_readings:" + ("" if first.dialect == "sqlite" else f"{own_schema(db_url)}.")
        assert [(r["scope"], r["version"]) for r in rows] == [
            ("sensor_app", 1),
            ("sensor_app", 2),
            (f"{readings}sensor_readings", 1),
            (f"{readings}sensor_readings", 2),
        ]
        assert all(r["applied_at"].endswith("Z") for r in rows)
    finally:
        await first.close()
        await second.close()


async def test_one_shape_for_values_in_both_dialects(db: Database) -> None:
    """Timestamps come back as RFC 3339 UTC text, JSON decoded; constraints are RejectedData."""
    await migrate(db)
    at = datetime(2026, 11, 24, 9, 50, 43, 531000, tzinfo=UTC)
    insert = (
        "INSERT INTO sensor_readings (device_id, timestamp, received_at, sensor_type, data,"
        " metadata, message_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    local = at.astimezone(tz=UTC).replace(tzinfo=None)  # naive: taken as UTC
    status = await db.execute(insert, "d1", at, local, "temperature", {"value": 21.5}, None, "m1")
    assert status == "INSERT 0 1"
    await db.executemany(insert, [("d1", at, at, "humidity", [1, 2], Json("s"), "m1")])
    rows = await db.fetch(
        "SELECT device_id, timestamp, received_at, data, metadata, created_at"
        " FROM sensor_readings ORDER BY id"
    )
    assert rows[0]["timestamp"] == rows[0]["received_at"] == "2026-11-24T09:50:43.531Z"
    assert rows[0]["data"] == {"value": 21.5}
    assert rows[0]["metadata"] is None
    assert rows[1]["data"] == [1, 2]
    assert rows[1]["metadata"] == "s"
    assert len(rows[0]["created_at"]) == 24
    assert rows[0]["created_at"].endswith("Z")
    with pytest.raises(RejectedData, match=r"(?i)unique|duplicate"):
        await db.execute(insert, "d1", at, at, "temperature", {}, None, "m1")
    with pytest.raises(RejectedData, match=r"(?i)null"):
        await db.execute(insert, None, at, at, "x", {}, None, "m2")

    async def rolled_back() -> None:
        async with db.transaction() as tx:
            await tx.execute(insert, "d2", at, at, "x", {}, None, "m3")
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        await rolled_back()
    async with db.transaction() as tx:
        await tx.execute(insert, "d3", at, at, "x", {}, None, "m4")

        async def half_duplicate() -> None:
            async with tx.savepoint() as sp:
                await sp.execute(insert, "d3", at, at, "y", {}, None, "m4")
                await sp.execute(insert, "d3", at, at, "x", {}, None, "m4")  # duplicate

        with pytest.raises(RejectedData):
            await half_duplicate()
    assert [r["device_id"] for r in await db.fetch("SELECT device_id FROM sensor_readings")] == [
        "d1",
        "d1",
        "d3",
    ]
    assert await db.fetchrow("SELECT id FROM sensor_readings WHERE device_id = $1", "nope") is None
    assert await db.ping()


def reading(message_id: str, device: str, sensors: dict[str, Any], **extra: Any) -> dict[str, Any]:
    payload = {
        "device_id": device,
        "timestamp": "2026-11-24T07:50:43.531+01:00",
        "sensors": sensors,
    }
    return {"messageId": message_id, "messageType": "data", "payload": {**payload, **extra}}


def sql_pattern(url: str, port: int, retries: int = 1) -> str:
    schema = own_schema(url)
    return f"""
pattern: {{name: readings}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", ack: true}}
  output:
    - type: sql
      url: "{url}"
      table: sensor_readings
      migrate: sensor_readings
      schema: {schema}
      explode: payload.sensors
      columns:
        device_id: payload.device_id
        timestamp: payload.timestamp
        received_at: $now
        sensor_type: $key
        data: $value
        metadata: payload.metadata?
        message_id: messageId
      timestamp_columns: [timestamp, received_at]
      json_columns: [data, metadata]
settings: {{retries: {retries}, backoff_base: 0.05, breaker_timeout: 0.2}}
"""


async def send_lines(port: int, values: list[Any]) -> bytes:
    import json

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(json.dumps(v).encode() + b"\n" for v in values))
    await writer.drain()
    ack = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return ack


async def test_sql_output_writes_a_row_per_sensor_once(db_url: str, tmp_path: Path) -> None:
    """tcp -> sql with explode: one row per sensor; a redelivery adds nothing; bad rows refuse only their message."""
    port = free_port()
    reader = open_database(db_url, data_dir=tmp_path)
    count = "SELECT count(*) FROM sensor_readings"
    try:
        async with engine_from(tmp_path, sql_pattern(db_url, port)) as engine:
            first = reading("m-1", "kit-01", {"temperature": {"value": 21.5, "unit": "C"},
                                              "humidity": {"value": 40}, "motion": True},
                            metadata={"site": "a"})  # fmt: skip
            second = reading("m-2", "kit-02", {"temperature": {"value": 19.0}, "co2": 612})
            assert await send_lines(port, [first, second]) == b"ok 2\n"
            await eventually(lambda: engine.runners[0].routes[0].delivered == 2)
            assert await reader.fetchval(count) == 5
            rows = await reader.fetch(
                "SELECT device_id, timestamp, received_at, sensor_type, data, metadata, message_id"
                " FROM sensor_readings WHERE message_id = 'm-1' ORDER BY sensor_type"
            )
            assert [r["sensor_type"] for r in rows] == ["humidity", "motion", "temperature"]
            assert rows[2]["data"] == {"value": 21.5, "unit": "C"}
            assert rows[1]["data"] is True
            assert rows[0]["timestamp"] == "2026-11-24T06:50:43.531Z"  # UTC
            assert rows[0]["metadata"] == {"site": "a"}
            assert rows[0]["received_at"].endswith("Z")

            # the same message again (a redelivery): no second row
            assert await send_lines(port, [first]) == b"ok 1\n"
            await eventually(lambda: engine.runners[0].routes[0].delivered == 3)
            assert await reader.fetchval(count) == 5

            # one batch: a good message between a too long device_id and a missing one
            bad_long = reading("m-3", "x" * 101, {"temperature": 1})
            good = reading("m-4", "kit-03", {"temperature": 2, "humidity": 3})
            bad_missing = {
                "messageId": "m-5",
                "messageType": "data",
                "payload": {"sensors": {"a": 1}},
            }
            assert await send_lines(port, [bad_long, good, bad_missing]) == b"ok 3\n"
            store = engine.sqlite
            assert store is not None
            await eventually(lambda: store.dlq_depth("readings") == 2)
            await eventually(lambda: engine.runners[0].routes[0].delivered == 4)
            assert await reader.fetchval(count) == 7
            assert await reader.fetchval("SELECT count(*) FROM sensor_readings WHERE message_id = 'm-4'") == 2
            assert engine.health()["services"]["storage"] == "up"
        letters = {
            r["message_id"]: r["reason"] for r in DlqAdmin(tmp_path / "data" / "buffer.db").list("readings")
        }
        assert "longer than 100 characters" in letters["m-3"]
        assert "`payload.device_id` is missing" in letters["m-5"]
    finally:
        await reader.close()


async def test_copy_for_big_batches_and_insert_for_small_ones_and_redeliveries(tmp_path: Path) -> None:
    """PostgreSQL: a batch of COPY_MIN_MESSAGES or more is one COPY, a smaller one an
    INSERT; a COPY meeting stored rows falls back to the INSERT (nothing twice) and
    COPY pauses; the same rows either way."""
    from wireway.connectors.sql.columns import describe
    from wireway.connectors.sql.config import SqlOutputConfig
    from wireway.connectors.sql.plan import Plan
    from wireway.connectors.sql.postgresql import PostgresDatabase
    from wireway.connectors.sql.write import COPY_MIN_MESSAGES, RowWriter

    async with pg_schema() as url:
        db = open_database(url, data_dir=tmp_path)
        try:
            await db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, v JSONB NOT NULL)")
            config = SqlOutputConfig(url=url, table="t", columns={"id": "payload.id", "v": "payload.v"})
            plan = Plan(config, "postgresql", await describe(db, "t"))
            writer = RowWriter(db)
            copies: list[bool] = []
            real_copy = writer.copy

            async def copy(db: PostgresDatabase, plan: Plan, data: bytes) -> bool:
                copies.append(await real_copy(db, plan, data))
                return copies[-1]

            writer.copy = copy  # type: ignore[method-assign]

            def batch(first: int, n: int) -> list[list[tuple[Any, ...]]]:
                return [[(f"m{i}", {"n": i})] for i in range(first, first + n)]

            await writer.insert(plan, batch(0, COPY_MIN_MESSAGES - 1))
            assert copies == []
            await writer.insert(plan, batch(100, COPY_MIN_MESSAGES))
            assert copies == [True]
            await writer.insert(plan, batch(100 + COPY_MIN_MESSAGES - 1, COPY_MIN_MESSAGES))  # 1 stored
            assert copies == [True, False]
            assert writer._copy_after > time.monotonic()
            await writer.insert(plan, batch(500, COPY_MIN_MESSAGES))  # COPY paused: INSERT
            assert copies == [True, False]
            ids = [r["id"] for r in await db.fetch("SELECT id FROM t")]
            assert len(ids) == len(set(ids)) == 4 * COPY_MIN_MESSAGES - 2
            last = 500 + COPY_MIN_MESSAGES - 1
            assert await db.fetchval(f"SELECT v FROM t WHERE id = 'm{last}'") == {"n": last}
        finally:
            await db.close()


async def test_a_row_the_database_refuses_refuses_only_its_message(db_url: str, tmp_path: Path) -> None:
    """A constraint only the database knows (a CHECK) falls back to one savepoint per message."""
    database = open_database(db_url, data_dir=tmp_path, own_schema=own_schema(db_url))
    await database.open()
    try:
        await database.execute("CREATE TABLE checked (id VARCHAR(20) PRIMARY KEY, n INTEGER CHECK (n >= 0))")
        text = f"""
pattern: {{name: checked}}
interfaces:
  input: [{{type: http, address: /in}}]
  output:
    - {{type: sql, url: "{db_url}", table: checked, on_conflict: error, columns: {{id: messageId, n: payload.n}}}}
settings: {{retries: 0}}
"""
        async with engine_from(tmp_path, text) as engine:
            batch = [{"messageId": f"c-{n}", "messageType": "data", "payload": {"n": n}} for n in (1, -1, 2)]
            batch.append({"messageId": "c-1", "messageType": "data", "payload": {"n": 5}})  # duplicate
            async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
                assert (await client.post("/in", json=batch)).status_code == 202
            store = engine.sqlite
            assert store is not None
            await eventually(lambda: store.dlq_depth("checked") == 2)
            await eventually(lambda: engine.runners[0].routes[0].delivered == 2)
        rows = await database.fetch("SELECT id, n FROM checked ORDER BY id")
        assert rows == [{"id": "c-1", "n": 1}, {"id": "c-2", "n": 2}]
        reasons = sorted(r["reason"] for r in DlqAdmin(tmp_path / "data" / "buffer.db").list("checked"))
        assert all(r.startswith("refused by the database") for r in reasons)
    finally:
        await database.close()


async def test_unreachable_database_retries_and_reports_storage_down(tmp_path: Path) -> None:
    """A closed port: the engine still starts, writes raise NotConnected, /health says storage down."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    port = free_port()
    async with engine_from(tmp_path, sql_pattern(url, port)) as engine:
        route = engine.runners[0].routes[0]
        with pytest.raises(NotConnected, match="cannot connect to PostgreSQL"):
            await route.output.write([Message("m-x", "2026-11-24T07:50:43.531Z", {})])
        assert await send_lines(port, [reading("m-1", "kit-01", {"a": 1})]) == b"ok 1\n"
        await eventually(lambda: "NotConnected" in route.last_error)
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
            health = (await client.get("/health")).json()
        assert health["services"]["storage"] == "down"
        assert health["status"] == "degraded"


async def test_output_recovers_when_its_connections_are_killed(tmp_path: Path) -> None:
    """pg_terminate_backend on every pooled connection: a retry on a new connection delivers."""
    port = free_port()
    async with pg_schema() as url:
        app_name = url.rsplit("=", 1)[1]
        async with engine_from(tmp_path, sql_pattern(url, port, retries=5)) as engine:
            route = engine.runners[0].routes[0]
            assert await send_lines(port, [reading("m-1", "kit-01", {"a": 1})]) == b"ok 1\n"
            await eventually(lambda: route.delivered == 1)
            admin = await asyncpg.connect(PG)
            killed = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                app_name,
            )
            assert killed
            assert await send_lines(port, [reading("m-2", "kit-01", {"a": 2, "b": 3})]) == b"ok 1\n"
            await eventually(lambda: route.delivered == 2)
            count = await admin.fetchval(
                f"SELECT count(*) FROM {app_name}.sensor_readings WHERE message_id = 'm-2'"
            )
            await admin.close()
            assert count == 2
            assert route.failed == 0
            assert engine.health()["services"]["storage"] == "up"


def test_config_errors_name_the_option(tmp_path: Path) -> None:
    """Bad options are reported at load with their key path."""
    cases = {
        'url: "mysql://x/y", table: t, columns: {a: messageId}': "url",
        'url: "sqlite://", table: "t;drop", columns: {a: messageId}': "table",
        'url: "sqlite://", table: t, columns: {a: $value}': "columns.a",
        'url: "sqlite://", table: t, columns: {a: payload..x}': "columns.a",
        'url: "sqlite://", table: t, columns: {a: metadata.nope}': "columns.a",
        'url: "sqlite://", table: t, columns: {a: messageId}, json_columns: [b]': "json_columns",
    }
    for options, where in cases.items():
        path = tmp_path / "p.yaml"
        path.write_text(
            "pattern: {name: p}\ninterfaces:\n  input: [{type: http, address: /in}]\n"
            f"  output: [{{type: sql, {options}}}]\n"
        )
        pattern, errors = load_pattern(path)
        assert pattern is None, options
        assert errors, options
        assert any(e.path == f"interfaces.output[0].{where}" for e in errors), [str(e) for e in errors]


async def test_timestamps_sort_as_text_in_sqlite(tmp_path: Path) -> None:
    """Offsets are normalized to UTC with milliseconds, so text order is time order."""
    database = open_database(f"sqlite:///{tmp_path}/t.db", data_dir=tmp_path)
    try:
        await migrate(database)
        base = datetime(2026, 11, 24, tzinfo=UTC)
        stamps = [base + timedelta(milliseconds=n * 999) for n in (3, 1, 2, 0)]
        await database.executemany(
            f"INSERT INTO {tables(database).api_keys} (key_id, key_hash, role, created_at)"
            " VALUES ($1, $2, 'device', $3)",
            [(f"k{i}", f"h{i}", ts) for i, ts in enumerate(stamps)],
        )
        rows = await database.fetch(f"SELECT key_id FROM {tables(database).api_keys} ORDER BY created_at")
        assert [r["key_id"] for r in rows] == ["k3", "k1", "k2", "k0"]
    finally:
        await database.close()


async def test_paths_and_value_checks(tmp_path: Path) -> None:
    """$value.x, list explode, metadata paths, and the reasons a value does not fit."""
    from wireway.connectors.sql.columns import describe
    from wireway.connectors.sql.config import SqlOutputConfig
    from wireway.connectors.sql.convert import Unfit
    from wireway.connectors.sql.plan import Plan

    database = open_database("sqlite:///:memory:", data_dir=tmp_path)
    await database.execute(
        "CREATE TABLE t (k VARCHAR(5) NOT NULL, n INTEGER, unit TEXT, cid TEXT, ok BOOLEAN,"
        " at TEXT, blob JSON_TEXT)"
    )
    config = SqlOutputConfig(
        url="sqlite://",
        table="t",
        explode="payload.items",
        columns={
            "k": "$key",
            "n": "$value.n?",
            "unit": "$value.unit?",
            "cid": "metadata.correlationId",
            "ok": "payload.ok?",
            "at": "timestamp",
            "blob": "payload",
        },
        timestamp_columns=["at"],
    )
    plan = Plan(config, "sqlite", await describe(database, "t"))
    await database.close()
    now = datetime.now(UTC)

    def msg(payload: Any) -> Message:
        m = Message("m", "2026-11-24T08:50:43.531+01:00", payload)
        m.metadata.correlation_id = "c-1"
        return m

    rows = plan.rows(msg({"items": {"a": {"n": 2.0, "unit": "C"}, "b": {}}, "ok": True}), now)
    blob = '{"items":{"a":{"n":2.0,"unit":"C"},"b":{}},"ok":true}'
    ts = "2026-11-24T07:50:43.531Z"
    assert rows == [("a", 2, "C", "c-1", True, ts, blob), ("b", None, None, "c-1", True, ts, blob)]
    assert [r[0] for r in plan.rows(msg({"items": [{"n": 1}, {"n": 2}]}), now)] == ["0", "1"]
    bad = {
        "`payload.items` is missing": {},
        "`payload.items` is empty": {"items": {}},
        "`payload.items` is a string, not an object": {"items": "x"},
        "payload.items.toolong: column `k`": {"items": {"toolong": {}}},
        "column `n` (`$value.n?`): expected an integer, got a string": {"items": {"a": {"n": "1"}}},
        "column `n` (`$value.n?`): expected an integer, got float": {"items": {"a": {"n": 1.5}}},
        "column `ok` (`payload.ok?`): expected true or false": {"items": {"a": {}}, "ok": 1},
    }
    for reason, payload in bad.items():
        with pytest.raises(Unfit) as caught:
            plan.rows(msg(payload), now)
        assert reason in str(caught.value)


# ----- the fast paths of the row plan and of timestamp parsing ----------------------------
class _Text(str):
    """A str subclass: parse_timestamp takes its general path for it."""


STAMPS = [
    "2026-11-24T07:50:43.531123Z",
    "2026-11-24T07:50:43Z",
    "2026-11-24T07:50:43.5Z",
    "2026-11-24T07:50:43.1234567Z",  # 7 digits
    "2026-11-24T07:50:43.531z",
    "2026-11-24 07:50:43.531Z",
    "2026-11-24t07:50:43Z",
    "2026-11-24T07:50:43.531+01:00",
    "2026-11-24T07:50:43.531-00:00",
    "2026-11-24T07:50:43",
    "2026-11-24T24:00:00Z",  # out of range
    "2026-02-30T07:50:43Z",
    "2026-11-24T07:50:43.Z",
    "2026-11-24T07:50Z",
    "2026-11-24",
    "2026-11-24T07:50:43.531Z\n",
    "\u0662026-11-24T07:50:43Z",  # an Arabic-Indic digit: \d matches it
    "",
    "now",
]


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        value = fn(*args)
    except ValueError as exc:
        return (type(exc), str(exc))
    return (value, getattr(value, "tzinfo", None))


def test_parse_timestamp_fast_path_is_the_general_path() -> None:
    """UTC `Z` texts skip the general parse; every text gives the same result (or error) both ways."""
    from wireway.connectors.sql.db import parse_timestamp

    for text in STAMPS:
        assert _outcome(parse_timestamp, text) == _outcome(parse_timestamp, _Text(text)), text


def _reference_rows(plan: Any, msg: Message, now: datetime) -> list[tuple[Any, ...]]:
    """Plan.rows as it was before its fast paths: every column through its getter and coercer."""
    from wireway.connectors.sql.config import MISSING
    from wireway.connectors.sql.convert import Unfit, type_name

    def convert(col: Any, key: Any, value: Any) -> Any:
        v = col.get(msg, key, value, now)
        if v is MISSING:
            if not col.optional:
                raise Unfit(f"column `{col.name}`: `{col.path}` is missing")
            v = None
        if v is None:
            if col.notnull:
                raise Unfit(f"column `{col.name}`: `{col.path}` is null (NOT NULL column)")
            return None
        try:
            return col.coerce(v)
        except Unfit as exc:
            raise Unfit(f"column `{col.name}` (`{col.path}`): {exc}") from None

    def entry_scoped(col: Any) -> bool:
        return bool(col.path.rstrip("?").split(".")[0] in ("$key", "$value"))

    row = [None if entry_scoped(c) else convert(c, None, None) for c in plan.columns]
    if plan.explode is None:
        return [tuple(row)]
    obj = plan.explode(msg, None, None, now)
    where = plan.config.explode
    if obj is MISSING:
        raise Unfit(f"`{where}` is missing")
    if type(obj) is dict:
        entries: Any = obj.items()
    elif type(obj) is list:
        entries = enumerate(obj)
    else:
        raise Unfit(f"`{where}` is {type_name(obj)}, not an object")
    rows = []
    for key, value in entries:
        try:
            for i, col in enumerate(plan.columns):
                if entry_scoped(col):
                    row[i] = convert(col, key, value)
        except Unfit as exc:
            raise Unfit(f"{where}.{key}: {exc}") from None
        rows.append(tuple(row))
    if not rows:
        raise Unfit(f"`{where}` is empty: nothing to write")
    return rows


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_plan_fast_paths_give_the_rows_and_errors_of_the_general_path(dialect: str) -> None:
    """Text, as-is JSON and remembered timestamps: the same rows, the same refusals, twice over."""
    from wireway.connectors.sql.columns import ColumnInfo
    from wireway.connectors.sql.config import SqlOutputConfig
    from wireway.connectors.sql.plan import Plan

    kinds = {"postgresql": ("timestamptz", "timestamp", "json"), "sqlite": ("text", "text", "json")}[dialect]
    table = {
        "mid": ColumnInfo("mid", "text", True, 8),
        "dev": ColumnInfo("dev", "text", True, 5),
        "note": ColumnInfo("note", "text", False),
        "at": ColumnInfo("at", kinds[0], True),
        "naive": ColumnInfo("naive", kinds[1], False),
        "k": ColumnInfo("k", "text", True, 3),
        "v": ColumnInfo("v", kinds[2], True),
        "u": ColumnInfo("u", "any", False),
        "meta": ColumnInfo("meta", kinds[2], False),
        "n": ColumnInfo("n", "int", False),
    }
    url = "postgresql://x@h/db" if dialect == "postgresql" else "sqlite://"
    config = SqlOutputConfig(
        url=url,
        table="t",
        explode="payload.items",
        columns={
            "mid": "messageId",
            "dev": "payload.dev",
            "note": "payload.note?",
            "at": "payload.at",
            "naive": "payload.deep.at?",
            "k": "$key",
            "v": "$value",
            "u": "$value.unit?",
            "meta": "payload.meta?",
            "n": "payload.n?",
        },
        timestamp_columns=["at", "naive"],
        json_columns=["v", "meta"],
    )
    plan = Plan(config, dialect, table)
    now = datetime.now(UTC)
    stamp = datetime(2026, 11, 24, 7, 50, 43, 531000, tzinfo=UTC)
    values: list[Any] = [
        *STAMPS,
        None,
        1,
        2.5,
        True,
        "x" * 9,
        "abc",
        "kit01",
        "kit012",
        stamp,
        {"a": 1},
        [1],
        "e\u00e9",
    ]
    good = {"dev": "kit", "at": "2026-11-24T07:50:43.531123Z", "items": {"a": {"unit": "C"}, "bb": 1}}
    payloads: list[Any] = [good, [], "text", None, {**good, "items": [{"unit": 1}]}]
    for field in ("dev", "note", "at", "meta", "n"):
        payloads.append({k: v for k, v in good.items() if k != field})
        payloads += [{**good, field: v} for v in values]
    payloads.append({**good, "deep": {"at": STAMPS[7]}})
    payloads += [
        {**good, "items": v} for v in ({}, [], {"long": 1}, {"a": None}, {"abc": 1, "b": {"unit": 2}})
    ]
    for attempt in range(2):  # the second time from remembered timestamps
        for payload in payloads:
            for mid in ("m-1", "m-123456", "m-1234567", ""):
                msg = Message(mid, "2026-11-24T07:50:43.531Z", payload)
                expected = _outcome_rows(_reference_rows, plan, msg, now)
                assert _outcome_rows(Plan.rows, plan, msg, now) == expected, (attempt, payload, mid)


def _outcome_rows(fn: Any, plan: Any, msg: Message, now: datetime) -> Any:
    from wireway.connectors.sql.convert import Unfit

    try:
        rows = fn(plan, msg, now)
    except Unfit as exc:
        return ("Unfit", str(exc))
    return [tuple((v, type(v), getattr(v, "tzinfo", None)) for v in row) for row in rows]


async def test_json_insert_stores_what_copy_stores(tmp_path: Path) -> None:
    """PostgreSQL: rows sent as text COPY or as one JSON document land exactly as through
    the INSERT bound row by row; values the first two cannot carry as the INSERT would (a
    naive datetime, a top-level NaN) go through that INSERT."""
    from wireway.connectors.sql.columns import describe
    from wireway.connectors.sql.config import SqlOutputConfig
    from wireway.connectors.sql.plan import Plan
    from wireway.connectors.sql.write import RowWriter

    columns = (
        "k int4 NOT NULL, a text, b varchar(20), c int2, d int8, e bool, f timestamptz, g jsonb, h jsonb,"
        " x float8"
    )
    names = ["k", "a", "b", "c", "d", "e", "f", "g", "h", "x"]
    floats = [0.1, 0.0, 1e-300, float(2**53 + 1), 1.7976931348623157e308, 5e-324, None, -2.5]
    utc = datetime(2026, 11, 24, 7, 50, 43, 531123, tzinfo=UTC)
    texts = ["", "plain", 'q"uo\\te', "line\nbreak\ttab\r\\.", "\u00e9\u4e2d\U0001f600", '{"a": 1}', None]
    jsons: list[Any] = [
        {"a": [1, 2.5, None, True, "x"], "b": {"c": {}}},
        {"nan": float("nan"), "big": 2**63, "neg": -(2**63), "tiny": 1e-300, "zero": -0.0},
        [],
        "text",
        0.1,
        7,
        False,
        {"\u00e9": "\\u0041", "k": "\U0001f600", "tab\t": "new\nline\\"},
        None,
    ]
    stamps = [utc, utc.replace(microsecond=0), datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)]
    stamps.append(datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC))
    rows = []
    for n in range(36):
        rows.append(
            (
                n,
                texts[n % len(texts)],
                texts[(n + 1) % len(texts)],
                [-32768, 32767, 0, None][n % 4],
                [-(2**63), 2**63 - 1, 1, None][n % 4],
                [True, False, None][n % 3],
                stamps[n % len(stamps)] if n % 5 else None,
                jsons[n % len(jsons)] if jsons[n % len(jsons)] is not None else {},
                jsons[(n + 3) % len(jsons)],
                floats[n % len(floats)],
            )
        )
    async with pg_schema() as url:
        db = open_database(url, data_dir=tmp_path)
        try:
            plans = []
            for table in ("by_text", "by_json", "by_insert"):
                await db.execute(f"CREATE TABLE {table} ({columns})")
                config = SqlOutputConfig(url=url, table=table, columns={n: f"payload.{n}" for n in names})
                plans.append(Plan(config, "postgresql", await describe(db, table)))
            by_text, by_json, by_insert = plans
            assert by_text.copy is not None
            assert by_text.copy.encode([[r] for r in rows]) is not None
            assert by_json.from_json is not None
            assert by_json.json_rows(rows) is not None
            by_json.copy = None
            by_insert.from_json = by_insert.copy = None
            writer = RowWriter(db)
            for plan in plans:
                await writer.insert(plan, [[r] for r in rows])
            select = ", ".join(f"{n}::text AS {n}" for n in names)
            stored = [
                await db.fetch(f"SELECT {select} FROM {t} ORDER BY k")
                for t in ("by_text", "by_json", "by_insert")
            ]
            assert len(stored[0]) == len(rows)
            assert stored[0] == stored[2]
            assert stored[1] == stored[2]

            # what JSON or text COPY cannot carry exactly: the batch goes through the INSERT
            naive = [(*rows[1][:6], utc.replace(tzinfo=None), *rows[1][7:])]
            last = [(*rows[1][:6], datetime.max.replace(tzinfo=UTC), *rows[1][7:])]
            first = [(*rows[1][:6], datetime.min.replace(tzinfo=UTC), *rows[1][7:])]
            nan = [(100, *rows[1][1:8], float("nan"), *rows[1][9:])]
            infinite = [(101, *rows[1][1:9], float("-inf"))]
            negative_zero = [(102, *rows[1][1:9], -0.0)]
            surrogate = [(rows[1][0], "\ud800", *rows[1][2:])]
            nul = [(rows[1][0], "a\x00b", *rows[1][2:])]
            for odd in (naive, last, first, nan, infinite, negative_zero, surrogate):
                assert by_json.json_rows(odd) is None
            for odd in (naive, last, first, nan, infinite, surrogate, nul):
                assert by_text.copy.encode([odd]) is None
            await writer.insert(by_json, [nan])
            assert await db.fetchval("SELECT h::text FROM by_json WHERE k = 100") == "null"  # as the INSERT
            await writer.insert(by_text, [nan])
            assert await db.fetchval("SELECT h::text FROM by_text WHERE k = 100") == "null"
            await writer.insert(by_json, [infinite])
            assert await db.fetchval("SELECT x FROM by_json WHERE k = 101") == float("-inf")
        finally:
            await db.close()
