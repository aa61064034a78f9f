"""Versioned schema migrations for SQLite and PostgreSQL, applied when a component starts.

A component hands `migrate()` its steps (`Migration`: a version, a name, statements
for each dialect and, if a step depends on what the database already holds, code run
after them). Every step whose version is not recorded yet for the component's scope
is applied, in order and in ONE transaction, and recorded in wireway's `migrations`
table (`Database.own_table`); a database that is up to date costs one query, so it
runs at every start. PostgreSQL serializes concurrent starts with an advisory
transaction lock, SQLite with `BEGIN IMMEDIATE` (the write lock). Add a step by
appending one with the next version; never edit one that has shipped.

A step names the tables it creates (`creates`): one that exists although no recorded
step made it is a user's table in wireway's place, and the start fails with
`TableInTheWay` naming it and the `schema` option that moves wireway's own tables
elsewhere, before any statement runs.

Applications register sets of steps by name (`register_migrations`), as a plugin
would, for the `sql` output's `migrate:` option: a set is a function of the table the
output writes, so the steps create and alter that table wherever the user points it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from wireway.connectors.sql.base import Database, Tx
from wireway.errors import ConnectorError
from wireway.registry import lookup, register_migrations

__all__ = [
    "Migration",
    "MigrationSet",
    "TableInTheWay",
    "apply_set",
    "migrate",
    "migration_set",
    "register_migrations",
    "table_exists",
]


class TableInTheWay(ConnectorError):
    """A table wireway would create already exists and is not wireway's."""


@dataclass(frozen=True)
class Migration:
    """One schema version: its statements for each dialect, then its code if any."""

    version: int
    name: str
    postgresql: tuple[str, ...] = ()
    sqlite: tuple[str, ...] = ()
    code: Callable[[Tx], Awaitable[None]] | None = None  # runs after the statements, in the same transaction
    creates: tuple[str, ...] = ()  # tables that must not exist before this step (as the statements name them)

    def statements(self, dialect: str) -> tuple[str, ...]:
        return self.postgresql if dialect == "postgresql" else self.sqlite


MigrationSet = Callable[[str], Sequence[Migration]]
"""The steps for one table (the `sql` output's `table:`), registered by name."""


def migration_set(name: str) -> MigrationSet | None:
    """The set of steps registered under `name` (importing its module on first use)."""
    spec = lookup("migrations", name)
    return None if spec is None else spec.cls


async def apply_set(db: Database, name: str, table: str) -> int:
    """Apply the registered set `name` to `table` (its scope: `<name>:<table>`, the
    table qualified by its schema in PostgreSQL, so that the same name in two schemas
    is two tables).

    Raises:
        ValueError: no set is registered under `name`.
        NotConnected, TableInTheWay, ConnectorError: as `migrate`.
    """
    steps = migration_set(name)
    if steps is None:
        raise ValueError(f"no set of migrations is registered as {name!r}")
    where = table
    if db.dialect == "postgresql" and "." not in table:
        where = f"{await db.fetchval('SELECT current_schema()')}.{table}"
    return await migrate(db, steps(table), scope=f"{name}:{where}")


_CREATE_RECORD = {
    "postgresql": "CREATE TABLE IF NOT EXISTS {table} (scope TEXT NOT NULL, version INTEGER NOT NULL,"
    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (scope, version))",
    "sqlite": "CREATE TABLE IF NOT EXISTS {table} (scope TEXT NOT NULL, version INTEGER NOT NULL,"
    " name TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (scope, version))",
}
_RECORD_COLUMNS = {"scope", "version", "name", "applied_at"}


async def table_exists(tx: Tx, table: str) -> bool:
    """Whether a table (`name` or `schema.name`, as a statement would name it) exists."""
    if tx.dialect == "postgresql":
        return bool(await tx.fetchval("SELECT to_regclass($1) IS NOT NULL", table))
    return bool(await tx.fetchval("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1", table))


async def _columns(tx: Tx, table: str) -> set[str]:
    if tx.dialect == "postgresql":
        rows = await tx.fetch(
            "SELECT attname AS name FROM pg_attribute WHERE attrelid = to_regclass($1)"
            " AND attnum > 0 AND NOT attisdropped",
            table,
        )
    else:
        rows = await tx.fetch("SELECT name FROM pragma_table_info($1)", table)
    return {str(r["name"]) for r in rows}


def _in_the_way(db: Database, table: str) -> TableInTheWay:
    where = f"schema `{db.own_schema}`" if db.dialect == "postgresql" else f"prefix `{db.own_schema}_`"
    return TableInTheWay(
        f"table {table} already exists in {db.url} and was not created by wireway, which keeps its own "
        f"tables under the {where}: rename that table, or set the `schema` option to another name"
    )


async def migrate(db: Database, steps: Sequence[Migration], *, scope: str) -> int:
    """Apply every step of `scope` not recorded yet; returns the version now in place.

    A database already at a newer version (a newer wireway wrote it) is left alone.

    Raises:
        NotConnected: the database cannot be reached.
        TableInTheWay: a table a step creates, or the record itself, is someone else's.
        ConnectorError: a statement failed (nothing of this call is kept).
    """
    record = db.own_table("migrations")
    async with db.transaction() as tx:
        if db.dialect == "postgresql":
            # one lock per record table, taken before CREATE SCHEMA (which races otherwise)
            await tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"wireway.migrations:{record}")
            # asked first: a role without CREATE on the database may use a schema made for it
            if not await tx.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", db.own_schema):
                await tx.execute(f"CREATE SCHEMA {db.own_schema}")
        if await table_exists(tx, record):
            if not await _columns(tx, record) >= _RECORD_COLUMNS:
                raise _in_the_way(db, record)
        else:
            await tx.execute(_CREATE_RECORD[db.dialect].format(table=record))
        rows = await tx.fetch(f"SELECT version FROM {record} WHERE scope = $1", scope)
        applied = {int(r["version"]) for r in rows}
        pending = sorted((s for s in steps if s.version not in applied), key=lambda s: s.version)
        for step in pending:
            for table in step.creates:
                if await table_exists(tx, table):
                    raise _in_the_way(db, table)
        for step in pending:
            for statement in step.statements(db.dialect):
                await tx.execute(statement)
            if step.code is not None:
                await step.code(tx)
            await tx.execute(
                f"INSERT INTO {record} (scope, version, name, applied_at) VALUES ($1, $2, $3, $4)",
                scope,
                step.version,
                step.name,
                datetime.now(UTC),
            )
            applied.add(step.version)
    return max(applied, default=0)
