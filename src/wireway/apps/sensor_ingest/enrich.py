"""`sensor_enrich`: validate a reading against `sensor_reading`, attach device metadata."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import msgspec

from wireway.apps.sensor_ingest.app import READINGS_TYPE, SensorApp
from wireway.apps.sensor_ingest.metrics import INGESTED
from wireway.apps.sensor_ingest.reading import check_reading
from wireway.envelope import Message
from wireway.processors.base import Processor, StepResult
from wireway.processors.validate import load_schema, make_validator
from wireway.registry import register_processor


@functools.cache
def _validator() -> Any:
    """The JSON Schema validator, built on first use (jsonschema weighs ~10 MB)."""
    return make_validator(load_schema("sensor_reading", Path(".")))


def _field(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def _describe(error: Any) -> str:
    field = _field(error)
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"{field + '.' if field else ''}{missing}: is required"
    if error.validator == "minProperties" and field == "sensors":
        return "sensors: must contain at least one sensor"
    if error.validator == "type" and not field:
        return "reading: must be a JSON object"
    return f"{field or 'reading'}: {error.message}"


def schema_errors(value: Any) -> list[str]:
    """The same check through the JSON Schema (the reference; slower)."""
    found = sorted(_validator().iter_errors(value), key=lambda e: list(map(str, e.path)))
    return [_describe(e) for e in found]


def reading_errors(value: Any) -> list[str]:
    """Every rule a reading breaks, as 'field: rule' (all of them, not only the first)."""
    return check_reading(value)


class EnrichConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `sensor_enrich` (none needed: it uses the sensor application's settings).

    Checks each payload against the built-in `sensor_reading` schema (all errors,
    each naming the field and the rule) unless its input checked it already,
    refuses readings from unknown devices when the application is set to
    `unknown_devices: reject`, sets `received_at` and `device_metadata` on the
    payload and the messageType `sensor-data`.
    """

    validate: bool = True


@register_processor("sensor_enrich", config=EnrichConfig)
class SensorEnrich(Processor):
    """Validate and enrich sensor readings."""

    service_class = SensorApp

    def __init__(self, config: EnrichConfig, *, base_dir: Path) -> None:
        self.validate = config.validate
        self.app: SensorApp | None = None

    def use_service(self, service: SensorApp) -> None:
        self.app = service

    async def process(self, batch: list[Message]) -> StepResult:
        app = self.app
        assert app is not None, "sensor_enrich runs inside an engine"
        await app.wait_ready()  # no enrichment, nor unknown-device check, without the registry
        passed: list[Message] = []
        failed: list[tuple[Message, list[str]]] = []
        metadata = app.devices.metadata if app.devices else {}
        reject_unknown = app.unknown_devices == "reject"
        validate = self.validate
        checked = app.checked_sources
        for msg in batch:
            payload = msg.payload
            if validate and msg.source not in checked:
                errors = check_reading(payload)
                if errors:  # the prefix names the kind of refusal for the error metrics
                    failed.append((msg, [f"validation: {error}" for error in errors]))
                    continue
            device_id = payload["device_id"]
            if reject_unknown and device_id not in metadata:
                failed.append((msg, [f"unknown device: {device_id} is not registered"]))
                continue
            payload["received_at"] = msg.timestamp
            payload["device_metadata"] = metadata.get(device_id, {})
            msg.message_type = READINGS_TYPE
            passed.append(msg)
        return StepResult(passed, failed)

    def committed(self, messages: list[Message]) -> None:
        """Count readings once they are durable (sensor_data_ingested_total)."""
        INGESTED.count(msg.payload for msg in messages)
