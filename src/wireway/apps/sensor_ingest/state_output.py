"""`sensor_state`: the device registry and occupancy, fed from the reading stream."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from wireway.apps.sensor_ingest import metrics
from wireway.apps.sensor_ingest.app import sensor_app
from wireway.apps.sensor_ingest.occupancy import OccupancyTracker
from wireway.connectors.base import Output, Service
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.registry import register_output


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
        metrics.INGESTED.setup(config.per_device_metrics)

    def services(self) -> list[Service]:
        return [sensor_app()]

    async def open(self) -> None:
        app = sensor_app()
        if app.hub is None:
            from wireway.connectors.websocket.hub import get_hub

            app.use_hub(get_hub("/ws"))

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        app = sensor_app()
        assert app.devices is not None
        readings = [m.payload for m in batch]
        try:
            await app.devices.record(readings)
        except Exception as exc:  # noqa: BLE001  (database errors are retried)
            raise RetryableError(f"device registry: {exc}") from exc
        tracker = app.occupancy
        for reading in readings:
            event = tracker.update(reading)
            if event is not None:
                self.occupancy_changed(event)
        for event in tracker.tick():
            self.occupancy_changed(event)
        return None

    def occupancy_changed(self, event: dict[str, Any]) -> None:
        app = sensor_app()
        metrics.OCCUPANCY.labels(event["device_id"], event["location"]).set(
            1 if event["occupied"] else 0
        )
        for location, n in app.occupancy.counts_by_location().items():
            metrics.OCCUPIED_BY_LOCATION.labels(location).set(n)
        if app.hub is not None:
            app.hub.publish("occupancy", event)
