"""`sensor_state`: the device registry and occupancy, fed from the reading stream."""

from __future__ import annotations

import datetime
import time
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from wireway.apps.sensor_ingest import metrics
from wireway.apps.sensor_ingest.app import sensor_app
from wireway.apps.sensor_ingest.occupancy import OccupancyTracker
from wireway.connectors.base import Output, Service
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.observability import logging as log
from wireway.registry import register_output

logger = log.get("sensor-state")


class SensorStateConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Keeps each device's first/last seen, latest value per sensor, reading count and
    occupancy (occupied while the radar sees presence or the PIR motion, vacant after
    `hold_seconds` without either), and pushes occupancy changes to live clients."""

    hold_seconds: Annotated[float, Meta(gt=0, description="seconds without presence -> vacant")] = 30
    per_device_metrics: Annotated[
        bool, Meta(description="add a device_id label to sensor_data_ingested_total")
    ] = False


@register_output("sensor_state", config=SensorStateConfig)
class SensorStateOutput(Output):
    """Update the device registry and occupancy from readings."""

    def __init__(self, config: SensorStateConfig, iface: Any, pattern: Any) -> None:
        super().__init__(config, iface, pattern)
        app = sensor_app()
        app.occupancy = OccupancyTracker(hold_seconds=config.hold_seconds)
        metrics.INGESTED.setup(config.per_device_metrics or pattern.monitoring.per_device)

    def services(self) -> list[Service]:
        return [sensor_app()]

    async def open(self) -> None:
        app = sensor_app()
        assert app.db is not None
        rows = await app.db.fetch("SELECT device_id, day, occupied_seconds FROM occupancy_daily")
        app.occupancy.restore([(r["device_id"], str(r["day"])[:10], r["occupied_seconds"]) for r in rows])
        self.saved = time.monotonic()
        if app.hub is None:
            from wireway.connectors.websocket.hub import get_hub

            app.use_hub(get_hub("/ws"))

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        app = sensor_app()
        assert app.devices is not None
        readings = [m.payload for m in batch]
        try:
            await app.devices.record(readings)
        except Exception as exc:
            raise RetryableError(f"device registry: {exc}") from exc
        tracker = app.occupancy
        for reading in readings:
            event = tracker.update(reading)
            if event is not None:
                self.occupancy_changed(event)
        for event in tracker.tick():
            self.occupancy_changed(event)
        if time.monotonic() - self.saved > 30:
            await self.save_occupancy()
        return None

    async def save_occupancy(self) -> None:
        """Persist occupied seconds per device and day (running totals, upserted)."""
        app = sensor_app()
        assert app.db is not None
        rows = [(d, datetime.date.fromisoformat(day), s) for d, day, s in app.occupancy.daily()]
        if rows:
            await app.db.executemany(
                "INSERT INTO occupancy_daily (device_id, day, occupied_seconds) VALUES ($1, $2, $3) "
                "ON CONFLICT (device_id, day) DO UPDATE SET occupied_seconds = $3",
                rows,
            )
        self.saved = time.monotonic()

    async def close(self) -> None:
        try:
            await self.save_occupancy()
        except Exception as exc:  # noqa: BLE001  (best effort at shutdown)
            logger.warning("could not save occupancy", error=str(exc))

    def occupancy_changed(self, event: dict[str, Any]) -> None:
        app = sensor_app()
        metrics.OCCUPANCY.labels(event["device_id"], event["location"]).set(1 if event["occupied"] else 0)
        for location, n in app.occupancy.counts_by_location().items():
            metrics.OCCUPIED_BY_LOCATION.labels(location).set(n)
        if app.hub is not None:
            app.hub.publish("occupancy", event)
