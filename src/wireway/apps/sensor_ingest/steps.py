"""The sensor application's steps after `sensor_enrich`: dedupe against the application's
recent ids, alert rules and occupancy. Alerts and occupancy changes are emitted as
messages (`messageType: alert` / `occupancy`) that the pattern's outputs carry,
chosen with `when:`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from wireway.apps.sensor_ingest.alerts import (
    AlertEngine,
    AlertRule,
    BusinessHours,
    alert_message,
    default_rules,
)
from wireway.apps.sensor_ingest.app import SensorApp
from wireway.envelope import Message
from wireway.processors.base import Processor, StepResult
from wireway.processors.dedupe import Dedupe, DedupeConfig
from wireway.registry import register_processor

DEFAULT_HOLD_SECONDS = 30.0
UNCONFIRMED_LIMIT = 10_000  # readings whose alerts wait for their batch to be stored


class SensorDedupeConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `sensor_dedupe` (none: the window is the application's)."""


@register_processor("sensor_dedupe", config=SensorDedupeConfig)
class SensorDedupe(Dedupe):
    """Drop a reading whose messageId the application has already stored; the same
    recent ids answer a resent HTTP reading with 409."""

    service_class = SensorApp

    def __init__(self, config: SensorDedupeConfig, *, base_dir: Path) -> None:
        super().__init__(DedupeConfig(), base_dir=base_dir)

    def use_service(self, service: SensorApp) -> None:
        self.seen = service.seen


class SensorAlertsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Alert rules over readings: a CEL condition, severity, cooldown and clear condition.

    Defaults: `high_gas_concentration` (MQ134 above `gas_threshold_ppm`, compared in
    ppm) and `unauthorized_presence` (radar presence or PIR motion on a device whose
    metadata has `secure_area: true`, outside `business_hours`). One open alert per
    rule and device; repeats raise its count. Every change is emitted as a message
    with `messageType: alert`, the alert plus `event` and `notify` in its payload
    and an id that names the alert and the transition (`alert-<id>-opened`,
    `alert-<id>-count-<n>`, `alert-<id>-acknowledged`, `alert-<id>-cleared`).
    Outputs pick them with `when: messageType == "alert" && payload.notify`
    (people are told) or `when: messageType == "alert"` (every change, to store it).
    """

    gas_threshold_ppm: Annotated[float, Meta(gt=0)] = 500
    business_hours: BusinessHours = msgspec.field(default_factory=BusinessHours)
    rules: list[AlertRule] = []
    default_rules: bool = True


@register_processor("sensor_alerts", config=SensorAlertsConfig)
class SensorAlerts(Processor):
    """Evaluate the alert rules on each reading; emit the alerts' changes."""

    service_class = SensorApp

    def __init__(self, config: SensorAlertsConfig, *, base_dir: Path) -> None:
        rules = default_rules(config.gas_threshold_ppm, config.business_hours) if config.default_rules else []
        names = {r.name for r in config.rules}
        self.engine = AlertEngine(
            [r for r in rules if r.name not in names] + list(config.rules),
            business_hours=config.business_hours,
        )
        # reading id -> its alert messages, until the reading's batch is stored. The
        # engine's state changes when a reading is evaluated and a reading evaluated again
        # changes nothing, so a batch that was not stored (a failed commit, a refused
        # request) would otherwise lose its alerts when the sender sends it again.
        self.unconfirmed: dict[str, list[Message]] = {}

    def use_service(self, service: SensorApp) -> None:
        service.alerts = self.engine  # the API lists, acknowledges and clears them

    async def process(self, batch: list[Message]) -> StepResult:
        emitted: list[Message] = []
        unconfirmed = self.unconfirmed
        if unconfirmed:  # readings sent again after their first batch was not stored
            for msg in batch:
                again = unconfirmed.get(msg.message_id)
                if again:
                    emitted += again
        for place, event in self.engine.evaluate_each([msg.payload for msg in batch]):
            reading_id = batch[place].message_id
            alert = alert_message(event, reading_id)
            emitted.append(alert)
            unconfirmed.setdefault(reading_id, []).append(alert)
        if len(unconfirmed) > UNCONFIRMED_LIMIT:  # readings never sent again: forget the oldest
            del unconfirmed[next(iter(unconfirmed))]
        return StepResult(batch, emitted=emitted)

    def committed(self, messages: list[Message]) -> None:
        """The alerts of these readings are stored: no need to emit them again."""
        unconfirmed = self.unconfirmed
        if unconfirmed:
            for msg in messages:
                unconfirmed.pop(msg.message_id, None)


class OccupancyConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Occupancy per device: occupied while the radar sees presence or the PIR motion,
    vacant `hold_seconds` after the last of either. Every change (and each device's
    first state) is emitted as a message with `messageType: occupancy` whose payload
    is `{device_id, location, occupied, since, timestamp}`; the `occupancy` and
    `occupancy_count` gauges follow them."""

    hold_seconds: Annotated[float, Meta(gt=0, description="seconds without presence or motion -> vacant")] = (
        DEFAULT_HOLD_SECONDS
    )


@register_processor("sensor_occupancy", config=OccupancyConfig)
class SensorOccupancy(Processor):
    """Track occupancy from readings; emit its changes."""

    service_class = SensorApp

    def __init__(self, config: OccupancyConfig, *, base_dir: Path) -> None:
        self.hold_seconds = config.hold_seconds
        self.app: SensorApp | None = None

    def use_service(self, service: SensorApp) -> None:
        service.track_occupancy(self.hold_seconds)
        self.app = service

    async def process(self, batch: list[Message]) -> StepResult:
        app = self.app
        assert app is not None, "sensor_occupancy runs inside an engine"
        assert app.occupancy is not None
        update = app.occupancy.update
        for msg in batch:
            update(msg.payload)  # changes reach app.occupancy_changes through on_change
        return StepResult(batch, emitted=app.occupancy_messages())
