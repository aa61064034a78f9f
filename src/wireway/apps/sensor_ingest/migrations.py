"""Versioned schema migrations of the sensor application, for SQLite and PostgreSQL.

`migrate(db)` creates `schema_migrations` and applies, in order and in ONE
transaction, every migration whose version is not recorded there yet; it is a no-op
on a database that is up to date, so it runs at every start. PostgreSQL serializes
concurrent starts with `pg_advisory_xact_lock` (one lock per schema); SQLite with
`BEGIN IMMEDIATE` (the write lock). Add a migration by appending to `MIGRATIONS` with
the next version; never edit one that has shipped. A migration is its statements for
the dialect, then, if it has one, its `code` (an async function of the transaction),
for a step that depends on what the database already holds.

Dialects differ only in types: SQLite has INTEGER PRIMARY KEY AUTOINCREMENT for
BIGSERIAL, TEXT timestamps (RFC 3339 UTC with milliseconds, so they sort as text),
`JSON_TEXT` for JSONB (TEXT affinity, decoded by `connectors.sql.db`), REAL for
DOUBLE PRECISION, TEXT for DATE, and no GIN index.

V1 creates `sensor_readings` only if it does not exist, so wireway can take over a
table an earlier service created (the same columns without `message_id`). V3 adopts
such a table: it adds `message_id`, gives every row already there `legacy-<id>`, makes
the column NOT NULL (PostgreSQL only: SQLite cannot add NOT NULL to a table without
rebuilding it; wireway always writes the column) and adds the unique index on
(message_id, sensor_type) that V1's constraint would have given, under the same name.
That index is what `ON CONFLICT DO NOTHING`, or `ON CONFLICT (message_id,
sensor_type)`, infers; `ON CONFLICT ON CONSTRAINT` would need V1's constraint. On a
table V1 created, V3 finds the column in place and does nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from wireway.connectors.sql.db import Database, Tx

NOW_SQLITE = "(strftime('%Y-%m-%dT%H:%M:%fZ','now'))"


@dataclass(frozen=True)
class Migration:
    """One schema version: its statements for each dialect, then its code if any."""

    version: int
    description: str
    postgresql: tuple[str, ...]
    sqlite: tuple[str, ...]
    code: Callable[[Tx], Awaitable[None]] | None = None  # runs after the statements, in the same transaction

    def statements(self, dialect: str) -> tuple[str, ...]:
        return self.postgresql if dialect == "postgresql" else self.sqlite


_READINGS_INDEXES = (
    # (device_id, ...) and (timestamp, ...) serve the filters and the keyset order of
    # the readings API: ORDER BY timestamp, id.
    "CREATE INDEX IF NOT EXISTS idx_sensor_readings_device_id ON sensor_readings (device_id, timestamp, id)",
    "CREATE INDEX IF NOT EXISTS idx_sensor_readings_timestamp ON sensor_readings (timestamp, id)",
    "CREATE INDEX IF NOT EXISTS idx_sensor_readings_sensor_type"
    " ON sensor_readings (sensor_type, timestamp, id)",
)

V1_READINGS = Migration(
    1,
    "sensor_readings, idempotent on (message_id, sensor_type)",
    postgresql=(
        """CREATE TABLE IF NOT EXISTS sensor_readings (
  id BIGSERIAL PRIMARY KEY,
  device_id VARCHAR(100) NOT NULL,
  timestamp TIMESTAMPTZ NOT NULL,
  received_at TIMESTAMPTZ NOT NULL,
  sensor_type VARCHAR(50) NOT NULL,
  data JSONB NOT NULL,
  metadata JSONB,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  message_id VARCHAR(64) NOT NULL,
  UNIQUE (message_id, sensor_type))""",
        *_READINGS_INDEXES,
        "CREATE INDEX IF NOT EXISTS idx_sensor_readings_data ON sensor_readings USING GIN (data)",
    ),
    sqlite=(
        f"""CREATE TABLE IF NOT EXISTS sensor_readings (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id VARCHAR(100) NOT NULL,
  timestamp TEXT NOT NULL,
  received_at TEXT NOT NULL,
  sensor_type VARCHAR(50) NOT NULL,
  data JSON_TEXT NOT NULL,
  metadata JSON_TEXT,
  created_at TEXT DEFAULT {NOW_SQLITE},
  message_id VARCHAR(64) NOT NULL,
  UNIQUE (message_id, sensor_type))""",
        *_READINGS_INDEXES,
    ),
)

V2_APP_TABLES = Migration(
    2,
    "devices, api_keys, alerts, occupancy_daily",
    postgresql=(
        """CREATE TABLE IF NOT EXISTS devices (
  device_id VARCHAR(100) PRIMARY KEY,
  metadata JSONB NOT NULL DEFAULT '{}',
  first_seen TIMESTAMPTZ,
  last_seen TIMESTAMPTZ,
  reading_count BIGINT NOT NULL DEFAULT 0,
  latest JSONB NOT NULL DEFAULT '{}',
  created_at TIMESTAMPTZ DEFAULT NOW())""",
        """CREATE TABLE IF NOT EXISTS api_keys (
  key_id VARCHAR(32) PRIMARY KEY,
  key_hash VARCHAR(128) NOT NULL UNIQUE,
  role VARCHAR(16) NOT NULL,
  device_id VARCHAR(100),
  created_at TIMESTAMPTZ NOT NULL,
  revoked_at TIMESTAMPTZ)""",
        """CREATE TABLE IF NOT EXISTS alerts (
  id VARCHAR(64) PRIMARY KEY,
  rule VARCHAR(100) NOT NULL,
  device_id VARCHAR(100) NOT NULL,
  severity VARCHAR(16) NOT NULL,
  state VARCHAR(16) NOT NULL,
  message TEXT,
  count INTEGER NOT NULL DEFAULT 1,
  first_seen TIMESTAMPTZ NOT NULL,
  last_seen TIMESTAMPTZ NOT NULL,
  acknowledged_at TIMESTAMPTZ,
  cleared_at TIMESTAMPTZ,
  data JSONB)""",
        "CREATE INDEX IF NOT EXISTS idx_alerts_state_device ON alerts (state, device_id)",
        """CREATE TABLE IF NOT EXISTS occupancy_daily (
  device_id VARCHAR(100) NOT NULL,
  day DATE NOT NULL,
  occupied_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
  PRIMARY KEY (device_id, day))""",
    ),
    sqlite=(
        f"""CREATE TABLE IF NOT EXISTS devices (
  device_id VARCHAR(100) PRIMARY KEY,
  metadata JSON_TEXT NOT NULL DEFAULT '{{}}',
  first_seen TEXT,
  last_seen TEXT,
  reading_count INTEGER NOT NULL DEFAULT 0,
  latest JSON_TEXT NOT NULL DEFAULT '{{}}',
  created_at TEXT DEFAULT {NOW_SQLITE})""",
        """CREATE TABLE IF NOT EXISTS api_keys (
  key_id VARCHAR(32) PRIMARY KEY,
  key_hash VARCHAR(128) NOT NULL UNIQUE,
  role VARCHAR(16) NOT NULL,
  device_id VARCHAR(100),
  created_at TEXT NOT NULL,
  revoked_at TEXT)""",
        """CREATE TABLE IF NOT EXISTS alerts (
  id VARCHAR(64) PRIMARY KEY,
  rule VARCHAR(100) NOT NULL,
  device_id VARCHAR(100) NOT NULL,
  severity VARCHAR(16) NOT NULL,
  state VARCHAR(16) NOT NULL,
  message TEXT,
  count INTEGER NOT NULL DEFAULT 1,
  first_seen TEXT NOT NULL,
  last_seen TEXT NOT NULL,
  acknowledged_at TEXT,
  cleared_at TEXT,
  data JSON_TEXT)""",
        "CREATE INDEX IF NOT EXISTS idx_alerts_state_device ON alerts (state, device_id)",
        """CREATE TABLE IF NOT EXISTS occupancy_daily (
  device_id VARCHAR(100) NOT NULL,
  day TEXT NOT NULL,
  occupied_seconds REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (device_id, day))""",
    ),
)

_UNIQUE_MESSAGE = (  # the name PostgreSQL gives V1's UNIQUE (message_id, sensor_type)
    "CREATE UNIQUE INDEX IF NOT EXISTS sensor_readings_message_id_sensor_type_key"
    " ON sensor_readings (message_id, sensor_type)"
)
_LEGACY_IDS = "UPDATE sensor_readings SET message_id = 'legacy-' || id WHERE message_id IS NULL"
_ADOPT = {
    "postgresql": (
        "ALTER TABLE sensor_readings ADD COLUMN IF NOT EXISTS message_id VARCHAR(64)",
        _LEGACY_IDS,
        "ALTER TABLE sensor_readings ALTER COLUMN message_id SET NOT NULL",
        _UNIQUE_MESSAGE,
    ),
    "sqlite": (
        "ALTER TABLE sensor_readings ADD COLUMN message_id VARCHAR(64)",
        _LEGACY_IDS,
        _UNIQUE_MESSAGE,
    ),
}
# whether message_id is in place: None (no column), false (nullable) or true; the table
# is found through search_path, as the statements find it
_HAS_MESSAGE_ID = {
    "postgresql": "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'sensor_readings'::regclass"
    " AND attname = 'message_id' AND NOT attisdropped",
    "sqlite": "SELECT 1 FROM pragma_table_info('sensor_readings') WHERE name = 'message_id'",
}


async def _adopt_readings(tx: Tx) -> None:
    """Give a `sensor_readings` table V1 did not create its `message_id` and unique key.

    Checked first, so that a table V1 created is neither locked nor scanned, and so
    that SQLite (whose ALTER TABLE has no IF NOT EXISTS) adds the column only once.
    """
    if await tx.fetchval(_HAS_MESSAGE_ID[tx.dialect]):
        return
    for statement in _ADOPT[tx.dialect]:
        await tx.execute(statement)


V3_ADOPT_READINGS = Migration(
    3,
    "adopt a sensor_readings table made without message_id (rows kept as legacy-<id>)",
    postgresql=(),
    sqlite=(),
    code=_adopt_readings,
)

MIGRATIONS: tuple[Migration, ...] = (V1_READINGS, V2_APP_TABLES, V3_ADOPT_READINGS)
LATEST = MIGRATIONS[-1].version

_CREATE_VERSIONS = {
    "postgresql": "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)",
}
# one lock per schema, so two applications in two schemas of one database do not wait
_PG_LOCK = "SELECT pg_advisory_xact_lock(hashtext('wireway.migrations:' || coalesce(current_schema(), '')))"


async def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply every missing migration; returns the schema version now in place.

    A database already at a newer version (a newer wireway wrote it) is left alone.

    Raises:
        NotConnected: the database cannot be reached.
        ConnectorError: a statement failed (nothing of this call is kept).
    """
    async with db.transaction() as tx:
        if db.dialect == "postgresql":
            await tx.execute(_PG_LOCK)
        await tx.execute(_CREATE_VERSIONS[db.dialect])
        rows = await tx.fetch("SELECT version FROM schema_migrations")
        applied = {int(r["version"]) for r in rows}
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in applied:
                continue
            for statement in migration.statements(db.dialect):
                await tx.execute(statement)
            if migration.code is not None:
                await migration.code(tx)
            await tx.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.description,
                datetime.now(UTC),
            )
            applied.add(migration.version)
    return max(applied, default=0)
