"""The generic migrator on real SQLite and PostgreSQL: steps, scopes, concurrent starts,
a failing step, and a set registered by name as a plugin would, used by the `sql` output."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_sql import own_schema, pg_schema, send_lines

from conftest import free_port
from support import engine_from
from wireway.config import load_pattern
from wireway.connectors.sql.base import Database, Tx
from wireway.connectors.sql.db import open_database
from wireway.connectors.sql.migrate import Migration, apply_set, migrate
from wireway.errors import ConnectorError
from wireway.registry import register_migrations


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL of each dialect (PostgreSQL: a schema of its own)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/migrate.db"
        return
    async with pg_schema() as found:
        yield found


def connect(url: str, tmp_path: Path) -> Database:
    return open_database(url, data_dir=tmp_path, own_schema=own_schema(url))


async def count_calls(tx: Tx) -> None:
    """A step's code: it sees the statements before it, in the same transaction."""
    await tx.execute("INSERT INTO things (name) VALUES ('made by code')")


STEPS = (
    Migration(
        1,
        "things",
        postgresql=("CREATE TABLE things (name TEXT)",),
        sqlite=("CREATE TABLE things (name TEXT)",),
    ),
    Migration(2, "a thing", code=count_calls),
)


async def recorded(db: Database, scope: str) -> list[tuple[int, str]]:
    rows = await db.fetch(
        f"SELECT version, name FROM {db.own_table('migrations')} WHERE scope = $1 ORDER BY version", scope
    )
    return [(r["version"], r["name"]) for r in rows]


async def test_steps_apply_once_in_order_even_from_concurrent_starts(url: str, tmp_path: Path) -> None:
    """Two starts at once apply each step once; a step appended later is the only one applied next."""
    first, second = connect(url, tmp_path), connect(url, tmp_path)
    try:
        versions = await asyncio.gather(migrate(first, STEPS, scope="t"), migrate(second, STEPS, scope="t"))
        assert versions == [2, 2]
        assert await first.fetch("SELECT name FROM things") == [{"name": "made by code"}]
        assert await migrate(first, STEPS, scope="t") == 2
        more = (
            *STEPS,
            Migration(
                3,
                "another",
                postgresql=("INSERT INTO things VALUES ('3')",),
                sqlite=("INSERT INTO things VALUES ('3')",),
            ),
        )
        assert await migrate(second, more, scope="t") == 3
        assert [r["name"] for r in await first.fetch("SELECT name FROM things")] == ["made by code", "3"]
        assert await recorded(first, "t") == [(1, "things"), (2, "a thing"), (3, "another")]
        # scopes are independent: another component's version 1 is its own
        assert await migrate(first, (Migration(1, "other"),), scope="other") == 1
        assert await recorded(first, "other") == [(1, "other")]
    finally:
        await first.close()
        await second.close()


async def test_a_failing_step_keeps_nothing(url: str, tmp_path: Path) -> None:
    """A step that fails rolls back the whole call: no table, not even the record."""
    db = connect(url, tmp_path)
    broken = (*STEPS, Migration(3, "broken", postgresql=("CREATE TABLE x (",), sqlite=("CREATE TABLE x (",)))
    try:
        with pytest.raises(ConnectorError):
            await migrate(db, broken, scope="t")
        for query in (f"SELECT * FROM {db.own_table('migrations')}", "SELECT name FROM things"):
            with pytest.raises(ConnectorError, match=r"migrations|things"):
                await db.fetch(query)
    finally:
        await db.close()


def widgets(table: str) -> tuple[Migration, ...]:
    """A set of steps as an application registers it: for whatever table the output names."""
    create = f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, size INTEGER NOT NULL)"
    return (Migration(1, f"{table}", postgresql=(create,), sqlite=(create,)),)


register_migrations("test_widgets", widgets, summary="widgets, for the tests")


async def test_the_sql_output_applies_a_set_registered_by_name(url: str, tmp_path: Path) -> None:
    """`migrate: test_widgets` on the sql output creates the table before it is described,
    and the rows arrive; the set is recorded under the output's table."""
    port = free_port()
    pattern = f"""
pattern: {{name: widgets}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", ack: true}}
  output:
    - type: sql
      url: "{url}"
      table: widgets
      migrate: test_widgets
      schema: {own_schema(url)}
      columns: {{id: payload.id, size: payload.size}}
"""
    async with engine_from(tmp_path, pattern):
        assert await send_lines(port, [{"id": "w1", "size": 3}]) != b""
    db = connect(url, tmp_path)
    try:
        for _ in range(100):
            if await db.fetch("SELECT id, size FROM widgets"):
                break
            await asyncio.sleep(0.05)
        assert await db.fetch("SELECT id, size FROM widgets") == [{"id": "w1", "size": 3}]
        scope = (await db.fetch(f"SELECT scope FROM {db.own_table('migrations')}"))[0]["scope"]
        assert scope.startswith("test_widgets:")
        assert scope.endswith("widgets")
    finally:
        await db.close()


async def test_one_set_on_the_same_name_in_two_schemas_is_two_tables(tmp_path: Path) -> None:
    """PostgreSQL: the scope is the table qualified by its schema, so one record table
    serves outputs whose search_paths differ."""
    async with pg_schema() as own_url, pg_schema() as a, pg_schema() as b:
        own = own_schema(own_url)
        for found in (a, b):
            db = open_database(found, data_dir=tmp_path, own_schema=own)
            try:
                assert await apply_set(db, "test_widgets", "widgets") == 1
                await db.execute("INSERT INTO widgets VALUES ('w', 1)")
            finally:
                await db.close()


def test_an_unknown_set_is_a_config_error(tmp_path: Path) -> None:
    """`migrate:` names a registered set; anything else is reported on that key."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "pattern: {name: p}\ninterfaces:\n  input: [{type: http, address: /in}]\n"
        "  output: [{type: sql, url: 'sqlite:///x.db', table: t, columns: {a: payload.a}, migrate: nope}]\n"
    )
    pattern, errors = load_pattern(path)
    assert pattern is None
    assert any("registered set of migrations" in str(e) and "test_widgets" in str(e) for e in errors), [
        str(e) for e in errors
    ]
