"""The readings API over real SQLite and PostgreSQL: keyset pages, filters, export, errors."""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from conftest import need_service
from wireway.apps.sensor_ingest.migrations import migrate
from wireway.apps.sensor_ingest.readings_api import readings_routes
from wireway.connectors.sql.db import Database, open_database

PG = "postgresql://postgres@127.0.0.1:5432/test"
BASE = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
N = 250


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database holding N readings (pairs share a timestamp; ids are shuffled)."""
    schema = ""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/readings.db"
    else:
        need_service("postgresql", 5432)
        schema = f"wwtest_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(PG)
        await admin.execute(f"CREATE SCHEMA {schema}")
        await admin.close()
        url = f"{PG}?search_path={schema}"
    database = open_database(url, data_dir=tmp_path, own_schema=schema or "wireway")
    try:
        await migrate(database)
        rows = []
        for i in range(N):
            # pairs share a second; even rows add up to 600 µs (kept by PostgreSQL only)
            at = BASE + timedelta(seconds=i // 2, microseconds=(i % 2 == 0) * (i % 7) * 100)
            sensor = ("temperature", "humidity")[i % 2]
            meta = {"site": "a"} if i % 3 else None
            rows.append((f"dev-{'ab'[i % 5 == 0]}", at, at, sensor, {"value": i}, meta, f"m-{i}"))
        random.Random(7).shuffle(rows)  # ids do not follow time
        await database.executemany(
            "INSERT INTO sensor_readings (device_id, timestamp, received_at, sensor_type, data,"
            " metadata, message_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            rows,
        )
        yield database
    finally:
        await database.close()
        if schema:
            admin = await asyncpg.connect(PG)
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            await admin.close()


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async def authorize(request: Request) -> Response | None:
        if request.headers.get("x-api-key") != "k":
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        return None

    app = Starlette(routes=readings_routes(lambda: db, authorize))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers={"x-api-key": "k"}) as c:
        yield c


async def expected(db: Database, where: str = "") -> list[int]:
    rows = await db.fetch(f"SELECT id FROM sensor_readings {where} ORDER BY timestamp, id")
    return [r["id"] for r in rows]


async def all_pages(client: httpx.AsyncClient, **params: Any) -> tuple[list[dict[str, Any]], int]:
    seen: list[dict[str, Any]] = []
    pages = 0
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/api/v1/readings", params=query)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["count"] == len(body["readings"])
        seen += body["readings"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages


async def test_cursor_pages_return_every_row_once_in_order(db: Database, client: httpx.AsyncClient) -> None:
    """250 rows in pages of 100: 3 pages, each row exactly once, by (timestamp, id)."""
    rows, pages = await all_pages(client, limit=100)
    assert pages == 3
    assert [r["id"] for r in rows] == await expected(db)
    first = rows[0]
    assert set(first) == {"id", "device_id", "timestamp", "received_at", "sensor_type", "data",
                          "metadata", "message_id"}  # fmt: skip
    assert first["timestamp"] == "2026-11-24T07:00:00.000Z"
    assert first["data"]["value"] in (0, 1)
    small, pages = await all_pages(client, limit=3)  # a page boundary between every kind of tie
    assert pages == 84
    assert [r["id"] for r in small] == [r["id"] for r in rows]
    default = (await client.get("/api/v1/readings")).json()
    assert default["count"] == 100
    assert default["next_cursor"]
    # rows added before the cursor's position never shift a page
    await db.execute(
        "INSERT INTO sensor_readings (device_id, timestamp, received_at, sensor_type, data,"
        " message_id) VALUES ('dev-a', $1, $1, 'x', $2, 'early')",
        BASE - timedelta(days=1),
        {},
    )
    page2 = (await client.get("/api/v1/readings", params={"cursor": default["next_cursor"]})).json()
    assert [r["id"] for r in page2["readings"]] == (await expected(db))[101:201]


async def test_filters_and_time_range(db: Database, client: httpx.AsyncClient) -> None:
    """device_id, sensor_type, since (inclusive) and until (exclusive) combine."""
    rows, _ = await all_pages(client, device_id="dev-b", limit=7)
    assert [r["id"] for r in rows] == await expected(db, "WHERE device_id = 'dev-b'")
    assert len(rows) == 50
    assert {r["device_id"] for r in rows} == {"dev-b"}
    since, until = "2026-11-24T07:00:10Z", "2026-11-24T08:00:20.000+01:00"  # = 07:00:20Z
    rows, _ = await all_pages(client, sensor_type="humidity", since=since, until=until)
    assert {r["sensor_type"] for r in rows} == {"humidity"}
    assert [r["timestamp"] for r in rows] == [f"2026-11-24T07:00:{s:02d}.000Z" for s in range(10, 20)]
    none = (await client.get("/api/v1/readings", params={"device_id": "nobody"})).json()
    assert none == {"readings": [], "next_cursor": None, "count": 0}


async def test_export_csv_and_jsonl_stream_every_matching_row(
    db: Database, client: httpx.AsyncClient
) -> None:
    """CSV with a header and JSON text columns; JSON lines with the listing's objects."""
    order = await expected(db)
    resp = await client.get("/api/v1/readings/export", params={"format": "csv"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(resp.text)))
    assert table[0] == ["id", "device_id", "timestamp", "received_at", "sensor_type",
                        "message_id", "data", "metadata"]  # fmt: skip
    assert [int(r[0]) for r in table[1:]] == order
    by_message = {r[5]: r for r in table[1:]}
    assert json.loads(by_message["m-4"][6]) == {"value": 4}
    assert json.loads(by_message["m-4"][7]) == {"site": "a"}
    assert by_message["m-3"][7] == ""

    resp = await client.get("/api/v1/readings/export", params={"format": "jsonl", "device_id": "dev-a"})
    assert resp.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(x) for x in resp.text.splitlines()]
    assert [r["id"] for r in lines] == await expected(db, "WHERE device_id = 'dev-a'")
    assert lines[0]["data"] == {"value": 1}
    assert lines[0]["timestamp"].endswith("Z")

    empty = await client.get("/api/v1/readings/export", params={"device_id": "nobody"})
    assert empty.text.splitlines() == [",".join(table[0])]


async def test_bad_parameters_are_400_with_details(client: httpx.AsyncClient) -> None:
    """Every broken parameter is named; authorization runs first."""
    resp = await client.get("/api/v1/readings", params={"since": "yesterday"})
    assert resp.status_code == 400
    assert resp.json()["error"]
    assert "since" in resp.json()["details"][0]
    resp = await client.get(
        "/api/v1/readings",
        params={
            "limit": "1001",
            "cursor": "garbage",
            "until": "2026-01-01T00:00:00Z",
            "since": "2026-02-01T00:00:00Z",
            "colour": "red",
        },
    )
    details = " ".join(resp.json()["details"])
    for word in ("limit", "cursor", "until", "colour"):
        assert word in details
    for params in ({"limit": "0"}, {"limit": "x"}, {"device_id": "d" * 101}):
        assert (await client.get("/api/v1/readings", params=params)).status_code == 400
    resp = await client.get("/api/v1/readings/export", params={"format": "xml"})
    assert resp.status_code == 400
    assert "format" in resp.json()["details"][0]
    resp = await client.get("/api/v1/readings", headers={"x-api-key": "wrong"})
    assert resp.status_code == 401


async def test_unreachable_database_is_503(tmp_path: Path) -> None:
    """A database that cannot be reached answers 503, not a traceback."""
    from conftest import free_port

    down = open_database(f"postgresql://postgres@127.0.0.1:{free_port()}/x", data_dir=tmp_path)

    async def allow(request: Request) -> Response | None:
        return None

    app = Starlette(routes=readings_routes(lambda: down, allow))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        for path in ("/api/v1/readings", "/api/v1/readings/export"):
            resp = await c.get(path)
            assert resp.status_code == 503
            assert resp.json()["error"] == "storage unavailable"
