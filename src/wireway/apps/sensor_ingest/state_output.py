"""`sensor_state`: the device registry and occupancy, fed from the reading stream."""

from __future__ import annotations

import datetime
import time
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from wireway.apps.sensor_ingest import metrics
from wireway.apps.sensor_ingest.app import sensor_app
from wireway.apps.sensor_ingest.occupancy import OccupancyTracker, location_of
from wireway.connectors.base import Output, Service
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.observability import logging as log
from wireway.registry import register_output

logger = log.get("sensor-state")


DEFAULT_HOLD_SECONDS = 30.0


class OccupancyOptions(msgspec.Struct, forbid_unknown_fields=True):
    """How occupancy is decided."""

    hold_seconds: Annotated[float, Meta(gt=0, description="seconds without presence or motion -> vacant")] = (
        DEFAULT_HOLD_SECONDS
    )


class SensorStateConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Keeps each device's first/last seen, latest value per sensor, reading count and
    occupancy (occupied while the radar sees presence or the PIR motion, vacant after
    `occupancy: {hold_seconds: N}` seconds without either, 30 by default), and pushes
    occupancy changes to live clients and the `occupancy` / `occupancy_count` gauges.

    `hold_seconds` at the top level is the older spelling of `occupancy.hold_seconds`
    and still works; giving both is a configuration error."""

    occupancy: Annotated[OccupancyOptions | None, Meta(description="`{hold_seconds: N}` (default 30)")] = None
    hold_seconds: Annotated[
        float | None, Meta(description="older spelling of `occupancy.hold_seconds` (not both)")
    ] = None
    per_device_metrics: Annotated[
        bool, Meta(description="add a device_id label to sensor_data_ingested_total")
    ] = False

    def __post_init__(self) -> None:
        if self.hold_seconds is None:
            return
        if self.occupancy is not None:
            raise ValueError(
                "set either `hold_seconds` or `occupancy: {hold_seconds: N}`, not both - at `$.hold_seconds`"
            )
        if not self.hold_seconds > 0:  # NaN too
            raise ValueError("Expected `float` > 0.0 - at `$.hold_seconds`")

    @property
    def hold(self) -> float:
        """The hold time in effect (seconds)."""
        if self.occupancy is not None:
            return self.occupancy.hold_seconds
        return DEFAULT_HOLD_SECONDS if self.hold_seconds is None else self.hold_seconds


@register_output("sensor_state", config=SensorStateConfig)
class SensorStateOutput(Output):
    """Update the device registry and occupancy from readings."""

    def __init__(self, config: SensorStateConfig, iface: Any, pattern: Any) -> None:
        super().__init__(config, iface, pattern)
        self.saved = time.monotonic()
        self.restored = False  # the stored per-day totals were read back
        app = sensor_app()
        tracker = OccupancyTracker(hold_seconds=config.hold)

        def changed(event: dict[str, Any]) -> None:
            # every change, from a reading or from tick() (write() or the app's
            # refresh loop): the gauges and live clients see each transition once
            metrics.occupancy_changed(event, tracker.occupied_in)
            if app.hub is not None:
                app.hub.publish("occupancy", event)

        tracker.on_change = changed
        app.occupancy = tracker
        metrics.INGESTED.setup(config.per_device_metrics or pattern.monitoring.per_device)

    def services(self) -> list[Service]:
        return [sensor_app()]

    async def open(self) -> None:
        app = sensor_app()
        self.saved = time.monotonic()
        self.restored = False
        if app.hub is None:
            from wireway.connectors.websocket.hub import get_hub

            app.use_hub(get_hub("/ws"))
        await app.when_ready(self.load)

    async def load(self) -> None:
        """The stored occupied seconds per device and day, placed at each registered
        device's location (before any reading is let through)."""
        app = sensor_app()
        assert app.db is not None
        rows = await app.db.fetch("SELECT device_id, day, occupied_seconds FROM occupancy_daily")
        locations = (
            {d: location_of(m) for d, m in app.devices.metadata.items()} if app.devices is not None else None
        )
        app.occupancy.restore(
            [(r["device_id"], str(r["day"])[:10], r["occupied_seconds"]) for r in rows], locations
        )
        self.restored = True

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        app = sensor_app()
        if app.waiting:  # readings from the buffer, before the registry loads
            raise RetryableError("device registry: storage not reached yet")
        assert app.devices is not None
        readings = [m.payload for m in batch]
        try:
            await app.devices.record(readings)
        except Exception as exc:
            raise RetryableError(f"device registry: {exc}") from exc
        tracker = app.occupancy
        for reading in readings:
            tracker.update(reading)  # changes go to the tracker's on_change
        tracker.tick()
        if time.monotonic() - self.saved > 30:
            await self.save_occupancy()
        return None

    async def save_occupancy(self) -> None:
        """Persist occupied seconds per device and day (running totals, upserted)."""
        app = sensor_app()
        assert app.db is not None
        if not self.restored:  # the stored totals are not read yet: do not overwrite them
            return
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
