"""`sensor_state`: the sensor application's own tables, fed from its messages."""

from __future__ import annotations

import datetime
import time
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from wireway.apps.sensor_ingest import metrics
from wireway.apps.sensor_ingest.alerts import ALERT_TYPE
from wireway.apps.sensor_ingest.app import READINGS_TYPE, SensorApp
from wireway.apps.sensor_ingest.migrations import tables
from wireway.apps.sensor_ingest.occupancy import location_of
from wireway.connectors.base import Output
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.observability import logging as log
from wireway.registry import register_output

logger = log.get("sensor-state")


class SensorStateConfig(msgspec.Struct, forbid_unknown_fields=True):
    """The sensor application's own state, fed from its messages: each device's
    first/last seen, latest value per sensor and reading count (from `sensor-data`
    messages), the alerts (from `alert` messages: each alert's last state, upserted,
    read back at start) and the occupied seconds per device and day (saved every
    `save_every` seconds and at shutdown)."""

    per_device_metrics: Annotated[
        bool, Meta(description="add a device_id label to sensor_data_ingested_total")
    ] = False
    save_every: Annotated[float, Meta(gt=0, description="seconds between saves of occupied time")] = 30.0


def _dt(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(datetime.UTC)


@register_output("sensor_state", config=SensorStateConfig)
class SensorStateOutput(Output):
    """Update the device registry and the stored alerts; save occupancy totals."""

    service_class = SensorApp

    def __init__(self, config: SensorStateConfig, iface: Any, pattern: Any) -> None:
        super().__init__(config, iface, pattern)
        self.saved = time.monotonic()
        self.restored = False  # the stored per-day totals were read back
        self.app: SensorApp | None = None
        metrics.INGESTED.setup(config.per_device_metrics or pattern.monitoring.per_device)

    def use_service(self, service: SensorApp) -> None:
        self.app = service

    async def open(self) -> None:
        assert self.app is not None
        self.saved = time.monotonic()
        self.restored = False
        await self.app.when_ready(self.load)

    async def load(self) -> None:
        """The stored occupied seconds per device and day, placed at each registered
        device's location (before any reading is let through)."""
        app = self.app
        assert app is not None
        assert app.db is not None
        if app.occupancy is not None:
            stored = f"SELECT device_id, day, occupied_seconds FROM {tables(app.db).occupancy_daily}"
            rows = await app.db.fetch(stored)
            devices = app.devices.metadata if app.devices is not None else {}
            app.occupancy.restore(
                [(r["device_id"], str(r["day"])[:10], r["occupied_seconds"]) for r in rows],
                {d: location_of(m) for d, m in devices.items()},
            )
        self.restored = True

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        app = self.app
        assert app is not None
        if app.waiting:  # messages from the buffer, before the registry loads
            raise RetryableError("device registry: storage not reached yet")
        assert app.devices is not None
        readings = [m.payload for m in batch if m.message_type == READINGS_TYPE]
        alerts = {m.payload["id"]: m.payload for m in batch if m.message_type == ALERT_TYPE}
        try:
            if readings:
                await app.devices.record(readings)
            if alerts:  # each alert once, in its last state in the batch
                await self.store_alerts(list(alerts.values()))
        except Exception as exc:
            raise RetryableError(f"device registry: {exc}") from exc
        if time.monotonic() - self.saved > self.config.save_every:
            await self.save_occupancy()
        return None

    async def store_alerts(self, alerts: list[dict[str, Any]]) -> None:
        assert self.app is not None
        assert self.app.db is not None
        await self.app.db.executemany(
            f"INSERT INTO {tables(self.app.db).alerts} (id, rule, device_id, severity, state, message,"
            " count, first_seen, "
            "last_seen, acknowledged_at, cleared_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
            "$9, $10, $11, $12) ON CONFLICT (id) DO UPDATE SET state = $5, message = $6, "
            "count = $7, last_seen = $9, acknowledged_at = $10, cleared_at = $11, data = $12",
            [
                (
                    a["id"],
                    a["rule"],
                    a["device_id"],
                    a["severity"],
                    a["state"],
                    a.get("message", ""),
                    a["count"],
                    _dt(a["first_seen"]),
                    _dt(a["last_seen"]),
                    _dt(a.get("acknowledged_at")),
                    _dt(a.get("cleared_at")),
                    a.get("data"),
                )
                for a in alerts
            ],
        )

    async def save_occupancy(self) -> None:
        """Persist occupied seconds per device and day (running totals, upserted)."""
        app = self.app
        assert app is not None
        assert app.db is not None
        if not self.restored or app.occupancy is None:  # not read back yet: do not overwrite
            return
        rows = [(d, datetime.date.fromisoformat(day), s) for d, day, s in app.occupancy.daily()]
        if rows:
            await app.db.executemany(
                f"INSERT INTO {tables(app.db).occupancy_daily} (device_id, day, occupied_seconds)"
                " VALUES ($1, $2, $3) "
                "ON CONFLICT (device_id, day) DO UPDATE SET occupied_seconds = $3",
                rows,
            )
        self.saved = time.monotonic()

    async def close(self) -> None:
        try:
            await self.save_occupancy()
        except Exception as exc:  # noqa: BLE001  (best effort at shutdown)
            logger.warning("could not save occupancy", error=str(exc))
