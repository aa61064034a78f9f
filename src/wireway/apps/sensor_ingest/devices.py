"""The device registry: metadata, first/last seen, latest values, counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from wireway.apps.sensor_ingest.migrations import tables
from wireway.connectors.sql.db import Database
from wireway.envelope import canonical_timestamp

_encode = msgspec.json.Encoder().encode
# canonical RFC 3339 texts cast to timestamptz exactly (microseconds, UTC)
_UPSERT_PG = (
    "INSERT INTO {devices} AS devices (device_id, metadata, first_seen, last_seen, reading_count, latest) "
    "SELECT r.d, '{{}}'::jsonb, r.f, r.l, r.n, r.v "
    "FROM jsonb_to_recordset($1::text::jsonb) AS r(d text, f timestamptz, l timestamptz, n bigint, v jsonb) "
)


def _dt(ts: str) -> datetime:
    dt = datetime.fromisoformat(ts)  # Python reads the `Z` of canonical texts itself
    return dt if dt.tzinfo is UTC else dt.astimezone(UTC)


class _Seen:
    """One device in a batch: first and last timestamp (canonical text), count, latest values."""

    __slots__ = ("first", "last", "latest", "n")

    def __init__(self, ts: str) -> None:
        self.first = self.last = ts
        self.n = 0
        self.latest: dict[str, Any] = {}


class Devices:
    """An in-memory view of the `devices` table, written through in batches."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = tables(db).devices
        self.upsert_pg = _UPSERT_PG.format(devices=self.table)
        self.metadata: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        rows = await self.db.fetch(f"SELECT device_id, metadata FROM {self.table}")
        self.metadata = {r["device_id"]: r["metadata"] or {} for r in rows}

    def known(self, device_id: str) -> bool:
        return device_id in self.metadata

    async def upsert_metadata(self, device_id: str, metadata: dict[str, Any]) -> None:
        await self.db.execute(
            f"INSERT INTO {self.table} (device_id, metadata) VALUES ($1, $2) "
            "ON CONFLICT (device_id) DO UPDATE SET metadata = $2",
            device_id,
            metadata,
        )
        self.metadata[device_id] = metadata

    async def delete(self, device_id: str) -> bool:
        found = await self.db.fetchval(f"SELECT 1 FROM {self.table} WHERE device_id = $1", device_id)
        await self.db.execute(f"DELETE FROM {self.table} WHERE device_id = $1", device_id)
        self.metadata.pop(device_id, None)
        return bool(found)

    async def record(self, readings: list[dict[str, Any]]) -> None:
        """Fold a batch of readings into first/last seen, latest values and counts."""
        per: dict[str, _Seen] = {}
        for r in readings:
            ts = canonical_timestamp(r["timestamp"])
            device_id = r["device_id"]
            d = per.get(device_id)
            if d is None:
                d = per[device_id] = _Seen(ts)
            d.n += 1
            if ts < d.first:  # canonical texts: text order is time order
                d.first = ts
            if ts >= d.last:
                d.last = ts
            d.latest.update(r.get("sensors") or {})
        pg = self.db.dialect == "postgresql"
        least, greatest = ("LEAST", "GREATEST") if pg else ("min", "max")
        merged = "devices.latest || EXCLUDED.latest" if pg else "json_patch(devices.latest, excluded.latest)"
        # one upsert per device, no read-modify-write
        update = (
            "ON CONFLICT (device_id) DO UPDATE SET "
            f"first_seen = {least}(COALESCE(devices.first_seen, EXCLUDED.first_seen), EXCLUDED.first_seen), "
            f"last_seen = {greatest}(COALESCE(devices.last_seen, EXCLUDED.last_seen), EXCLUDED.last_seen), "
            "reading_count = devices.reading_count + EXCLUDED.reading_count, "
            "latest = CASE WHEN devices.last_seen IS NULL OR EXCLUDED.last_seen >= devices.last_seen "
            f"THEN {merged} ELSE devices.latest END"
        )
        if pg:  # every device of the batch in ONE statement: a jsonb array of records
            rows = [
                {"d": device_id, "f": d.first, "l": d.last, "n": d.n, "v": d.latest}
                for device_id, d in per.items()
            ]
            await self.db.execute(self.upsert_pg + update, _encode(rows).decode())
        else:
            await self.db.executemany(
                f"INSERT INTO {self.table} AS devices"
                " (device_id, metadata, first_seen, last_seen, reading_count, latest) "
                f"VALUES ($1, $2, $3, $4, $5, $6) {update}",
                [(device_id, {}, _dt(d.first), _dt(d.last), d.n, d.latest) for device_id, d in per.items()],
            )
        for device_id in per:
            self.metadata.setdefault(device_id, {})

    async def get(self, device_id: str) -> dict[str, Any] | None:
        return await self.db.fetchrow(
            "SELECT device_id, metadata, first_seen, last_seen, reading_count, latest "
            f"FROM {self.table} WHERE device_id = $1",
            device_id,
        )

    async def all(self) -> list[dict[str, Any]]:
        return await self.db.fetch(
            "SELECT device_id, metadata, first_seen, last_seen, reading_count, latest "
            f"FROM {self.table} ORDER BY device_id"
        )
