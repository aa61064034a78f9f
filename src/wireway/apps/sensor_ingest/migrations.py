"""The sensor application's schema: its steps for the generic migrator, both dialects.

Two sets, applied by `connectors.sql.migrate`:

- `sensor_readings` (registered by that name, for the `sql` output's `migrate:`): the
  readings table, wherever the output's `table:` points. V1 creates it only if it does
  not exist, so wireway can take over the table the team's earlier service created
  (the same columns without `message_id`). V2 adopts such a table: it adds
  `message_id`, gives every row already there `legacy-<id>`, makes the column NOT NULL
  (PostgreSQL only: SQLite cannot add NOT NULL to a table without rebuilding it;
  wireway always writes the column) and adds the unique index on (message_id,
  sensor_type) that V1's constraint would have given, under the same name. That index
  is what `ON CONFLICT DO NOTHING`, or `ON CONFLICT (message_id, sensor_type)`, infers.
  On a table V1 created, V2 finds the column in place and does nothing.
- the application's own tables (devices, api keys, alerts, daily occupancy), kept
  apart from the user's (`Database.own_table`: the `wireway` schema in PostgreSQL, a
  `wireway_` prefix in SQLite). A user's table in their place stops the start with
  `TableInTheWay`. Statements elsewhere in the application name them through
  `tables(db)`.

Dialects differ only in types: SQLite has INTEGER PRIMARY KEY AUTOINCREMENT for
BIGSERIAL, TEXT timestamps (RFC 3339 UTC with milliseconds, so they sort as text),
`JSON_TEXT` for JSONB (TEXT affinity, decoded by the database layer), REAL for DOUBLE
PRECISION, TEXT for DATE, and no GIN index.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from wireway.connectors.sql.base import Database, Tx, own_table_name
from wireway.connectors.sql.migrate import Migration, apply_set
from wireway.connectors.sql.migrate import migrate as apply_steps
from wireway.registry import register_migrations

READINGS = "sensor_readings"  # the readings table the application's API reads
READINGS_SET = "sensor_readings"
APP_SCOPE = "sensor_app"
NOW_SQLITE = "(strftime('%Y-%m-%dT%H:%M:%fZ','now'))"


# ----- the readings table -----------------------------------------------------------------
def _readings_indexes(table: str, bare: str) -> tuple[str, ...]:
    # (device_id, ...) and (timestamp, ...) serve the filters and the keyset order of the
    # readings API: ORDER BY timestamp, id.
    return (
        f"CREATE INDEX IF NOT EXISTS idx_{bare}_device_id ON {table} (device_id, timestamp, id)",
        f"CREATE INDEX IF NOT EXISTS idx_{bare}_timestamp ON {table} (timestamp, id)",
        f"CREATE INDEX IF NOT EXISTS idx_{bare}_sensor_type ON {table} (sensor_type, timestamp, id)",
    )


def _create_readings(table: str) -> Migration:
    bare = table.rpartition(".")[2]
    return Migration(
        1,
        f"{table}, idempotent on (message_id, sensor_type)",
        postgresql=(
            f"""CREATE TABLE IF NOT EXISTS {table} (
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
            *_readings_indexes(table, bare),
            f"CREATE INDEX IF NOT EXISTS idx_{bare}_data ON {table} USING GIN (data)",
        ),
        sqlite=(
            f"""CREATE TABLE IF NOT EXISTS {table} (
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
            *_readings_indexes(table, bare),
        ),
    )


def _adopt_readings(table: str) -> Migration:
    bare = table.rpartition(".")[2]
    # the name PostgreSQL gives V1's UNIQUE (message_id, sensor_type)
    unique = (
        f"CREATE UNIQUE INDEX IF NOT EXISTS {bare}_message_id_sensor_type_key"
        f" ON {table} (message_id, sensor_type)"
    )
    legacy_ids = f"UPDATE {table} SET message_id = 'legacy-' || id WHERE message_id IS NULL"
    adopt = {
        "postgresql": (
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS message_id VARCHAR(64)",
            legacy_ids,
            f"ALTER TABLE {table} ALTER COLUMN message_id SET NOT NULL",
            unique,
        ),
        "sqlite": (f"ALTER TABLE {table} ADD COLUMN message_id VARCHAR(64)", legacy_ids, unique),
    }
    # whether message_id is in place; the table is found as the statements find it
    has_message_id = {
        "postgresql": "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1)"
        " AND attname = 'message_id' AND NOT attisdropped",
        "sqlite": "SELECT 1 FROM pragma_table_info($1) WHERE name = 'message_id'",
    }

    async def adopt_readings(tx: Tx) -> None:
        """Give a table V1 did not create its `message_id` and unique key.

        Checked first, so that a table V1 created is neither locked nor scanned, and so
        that SQLite (whose ALTER TABLE has no IF NOT EXISTS) adds the column only once.
        """
        if await tx.fetchval(has_message_id[tx.dialect], table):
            return
        for statement in adopt[tx.dialect]:
            await tx.execute(statement)

    return Migration(
        2, f"adopt a {table} table made without message_id (rows kept as legacy-<id>)", code=adopt_readings
    )


def readings_steps(table: str) -> tuple[Migration, ...]:
    """The steps of the readings table `table` (`name` or `schema.name`)."""
    return (_create_readings(table), _adopt_readings(table))


register_migrations(READINGS_SET, readings_steps, summary="the sensor application's readings table")


# ----- the application's own tables -----------------------------------------------------------
@dataclass(frozen=True)
class Tables:
    """How statements name the application's own tables in one database."""

    devices: str
    api_keys: str
    alerts: str
    occupancy_daily: str


def tables(db: Database) -> Tables:
    """The names of the application's own tables in `db`."""
    return _tables(db.dialect, db.own_schema)


@cache
def _tables(dialect: str, schema: str) -> Tables:
    names = (
        own_table_name(dialect, schema, name) for name in ("devices", "api_keys", "alerts", "occupancy_daily")
    )
    return Tables(*names)


def app_steps(db: Database) -> tuple[Migration, ...]:
    """The steps of the application's own tables in `db`."""
    t = tables(db)
    # index names are per schema in PostgreSQL but per file in SQLite: there they carry the prefix
    alerts_index = f"idx_{t.alerts.rpartition('.')[2]}_state_device"
    return (
        Migration(
            1,
            "devices, api_keys, alerts, occupancy_daily",
            creates=(t.devices, t.api_keys, t.alerts, t.occupancy_daily),
            postgresql=(
                f"""CREATE TABLE {t.devices} (
  device_id VARCHAR(100) PRIMARY KEY,
  metadata JSONB NOT NULL DEFAULT '{{}}',
  first_seen TIMESTAMPTZ,
  last_seen TIMESTAMPTZ,
  reading_count BIGINT NOT NULL DEFAULT 0,
  latest JSONB NOT NULL DEFAULT '{{}}',
  created_at TIMESTAMPTZ DEFAULT NOW())""",
                f"""CREATE TABLE {t.api_keys} (
  key_id VARCHAR(32) PRIMARY KEY,
  key_hash VARCHAR(128) NOT NULL UNIQUE,
  role VARCHAR(16) NOT NULL,
  device_id VARCHAR(100),
  created_at TIMESTAMPTZ NOT NULL,
  revoked_at TIMESTAMPTZ)""",
                f"""CREATE TABLE {t.alerts} (
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
                f"CREATE INDEX {alerts_index} ON {t.alerts} (state, device_id)",
                f"""CREATE TABLE {t.occupancy_daily} (
  device_id VARCHAR(100) NOT NULL,
  day DATE NOT NULL,
  occupied_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
  PRIMARY KEY (device_id, day))""",
            ),
            sqlite=(
                f"""CREATE TABLE {t.devices} (
  device_id VARCHAR(100) PRIMARY KEY,
  metadata JSON_TEXT NOT NULL DEFAULT '{{}}',
  first_seen TEXT,
  last_seen TEXT,
  reading_count INTEGER NOT NULL DEFAULT 0,
  latest JSON_TEXT NOT NULL DEFAULT '{{}}',
  created_at TEXT DEFAULT {NOW_SQLITE})""",
                f"""CREATE TABLE {t.api_keys} (
  key_id VARCHAR(32) PRIMARY KEY,
  key_hash VARCHAR(128) NOT NULL UNIQUE,
  role VARCHAR(16) NOT NULL,
  device_id VARCHAR(100),
  created_at TEXT NOT NULL,
  revoked_at TEXT)""",
                f"""CREATE TABLE {t.alerts} (
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
                f"CREATE INDEX {alerts_index} ON {t.alerts} (state, device_id)",
                f"""CREATE TABLE {t.occupancy_daily} (
  device_id VARCHAR(100) NOT NULL,
  day TEXT NOT NULL,
  occupied_seconds REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (device_id, day))""",
            ),
        ),
        Migration(
            2,
            "api_keys.expires_at",
            postgresql=(f"ALTER TABLE {t.api_keys} ADD COLUMN expires_at TIMESTAMPTZ",),
            sqlite=(f"ALTER TABLE {t.api_keys} ADD COLUMN expires_at TEXT",),
        ),
    )


async def migrate(db: Database) -> None:
    """Bring the readings table and the application's own tables up to date.

    Raises:
        NotConnected: the database cannot be reached.
        TableInTheWay: a user's table is where the application keeps one of its own.
        ConnectorError: a statement failed (nothing of that set is kept).
    """
    await apply_set(db, READINGS_SET, READINGS)
    await apply_steps(db, app_steps(db), scope=APP_SCOPE)
