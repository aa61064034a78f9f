"""The device registry: metadata, first/last seen, latest values, counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from wireway.connectors.sql.db import Database
from wireway.envelope import canonical_timestamp


def _dt(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)


class Devices:
    """An in-memory view of the `devices` table, written through in batches."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.metadata: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        rows = await self.db.fetch("SELECT device_id, metadata FROM devices")
        self.metadata = {r["device_id"]: r["metadata"] or {} for r in rows}

    def known(self, device_id: str) -> bool:
        return device_id in self.metadata

    async def upsert_metadata(self, device_id: str, metadata: dict[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO devices (device_id, metadata) VALUES ($1, $2) "
            "ON CONFLICT (device_id) DO UPDATE SET metadata = $2",
            device_id,
            metadata,
        )
        self.metadata[device_id] = metadata

    async def delete(self, device_id: str) -> bool:
        found = await self.db.fetchval("SELECT 1 FROM devices WHERE device_id = $1", device_id)
        await self.db.execute("DELETE FROM devices WHERE device_id = $1", device_id)
        self.metadata.pop(device_id, None)
        return bool(found)

    async def record(self, readings: list[dict[str, Any]]) -> None:
        """Fold a batch of readings into first/last seen, latest values and counts."""
        per: dict[str, dict[str, Any]] = {}
        for r in readings:
            ts = canonical_timestamp(r["timestamp"])
            d = per.setdefault(r["device_id"], {"first": ts, "last": ts, "n": 0, "latest": {}})
            d["n"] += 1
            d["first"] = min(d["first"], ts)
            if ts >= d["last"]:
                d["last"] = ts
            d["latest"].update(r.get("sensors") or {})
        async with self.db.transaction() as tx:
            for device_id, d in per.items():
                row = await tx.fetchrow(
                    "SELECT latest, last_seen FROM devices WHERE device_id = $1", device_id
                )
                latest = dict((row or {}).get("latest") or {})
                last_seen = (row or {}).get("last_seen")
                if last_seen is None or d["last"] >= last_seen:
                    latest.update(d["latest"])
                if row is None:
                    await tx.execute(
                        "INSERT INTO devices (device_id, metadata, first_seen, last_seen, "
                        "reading_count, latest) VALUES ($1, $2, $3, $4, $5, $6) "
                        "ON CONFLICT (device_id) DO NOTHING",
                        device_id,
                        {},
                        _dt(d["first"]),
                        _dt(d["last"]),
                        d["n"],
                        latest,
                    )
                    self.metadata.setdefault(device_id, {})
                else:
                    await tx.execute(
                        "UPDATE devices SET first_seen = CASE WHEN first_seen IS NULL OR "
                        "first_seen > $2 THEN $2 ELSE first_seen END, last_seen = CASE WHEN "
                        "last_seen IS NULL OR last_seen < $3 THEN $3 ELSE last_seen END, "
                        "reading_count = reading_count + $4, latest = $5 WHERE device_id = $1",
                        device_id,
                        _dt(d["first"]),
                        _dt(d["last"]),
                        d["n"],
                        latest,
                    )

    async def get(self, device_id: str) -> dict[str, Any] | None:
        return await self.db.fetchrow(
            "SELECT device_id, metadata, first_seen, last_seen, reading_count, latest "
            "FROM devices WHERE device_id = $1",
            device_id,
        )

    async def all(self) -> list[dict[str, Any]]:
        return await self.db.fetch(
            "SELECT device_id, metadata, first_seen, last_seen, reading_count, latest "
            "FROM devices ORDER BY device_id"
        )
