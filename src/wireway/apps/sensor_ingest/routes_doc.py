"""OpenAPI descriptions of the sensor application's routes.

Readings are described by `wireway/schemas/sensor_reading.json`, the schema the
hand-written check in `reading.py` is tested against. The other bodies are built as
dicts by `api.py`, `readings_api.py` and `http_input.py`; the Structs here give their
shapes, and the OpenAPI test decodes the real answers into them (unknown fields
refused), so a change to an answer that the description misses fails that test.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from importlib import resources
from typing import Any, Literal

import msgspec
from starlette.routing import BaseRoute

from wireway.apispec.openapi import ApiKey, Body, Param, RouteDoc, describe
from wireway.apps.sensor_ingest.access import NOTES, ROLES
from wireway.config.model import Security

API = ("sensor application",)
READING_REF = {"$ref": "#/components/schemas/sensor_reading"}


class ApiError(msgspec.Struct, forbid_unknown_fields=True):
    """An error answer; `details` lists what was wrong with the request."""

    error: str
    details: list[str] = []
    device_id: str | None = None
    id: str | None = None
    path: str | None = None
    limit_bytes: int | None = None


class ReadingAccepted(msgspec.Struct, forbid_unknown_fields=True):
    message: str
    message_id: str
    device_id: str
    timestamp: str


class BatchResult(msgspec.Struct, forbid_unknown_fields=True):
    device_id: str | None
    status: Literal["accepted", "duplicate", "failed"]
    message_id: str | None = None
    error: str | None = None


class BatchAccepted(msgspec.Struct, forbid_unknown_fields=True):
    """One result per reading, in the order sent."""

    message: str
    total: int
    results: list[BatchResult]


class QueueStatus(msgspec.Struct, forbid_unknown_fields=True):
    queue_size: int
    dlq_size: int
    timestamp: str


class Occupancy(msgspec.Struct, forbid_unknown_fields=True):
    occupied: bool
    since: str | None
    occupied_seconds_today: float
    location: str
    daily: list[dict[str, Any]] | None = None


class Device(msgspec.Struct, forbid_unknown_fields=True):
    device_id: str
    metadata: dict[str, Any] | None
    first_seen: str | None
    last_seen: str | None
    reading_count: int | None
    latest: dict[str, Any] | None
    occupancy: Occupancy | None = None


class DeviceList(msgspec.Struct, forbid_unknown_fields=True):
    devices: list[Device]
    count: int


class MetadataUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Set a device's metadata (its `location` counts its occupancy there from now on)."""

    device_id: str
    metadata: dict[str, Any]


class MetadataUpdated(msgspec.Struct, forbid_unknown_fields=True):
    message: str
    device_id: str
    metadata: dict[str, Any]


class DeviceDeleted(msgspec.Struct, forbid_unknown_fields=True):
    message: str
    device_id: str


class LocationCount(msgspec.Struct, forbid_unknown_fields=True):
    location: str
    occupied: int
    devices: int


class OccupancyByLocation(msgspec.Struct, forbid_unknown_fields=True):
    locations: list[LocationCount]
    timestamp: str


class Alert(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    rule: str
    device_id: str
    severity: str
    state: Literal["open", "acknowledged", "cleared"]
    message: str
    count: int
    first_seen: str
    last_seen: str
    acknowledged_at: str | None
    cleared_at: str | None
    data: dict[str, Any]


class AlertList(msgspec.Struct, forbid_unknown_fields=True):
    alerts: list[Alert]
    count: int


class Reading(msgspec.Struct, forbid_unknown_fields=True):
    """One stored row: one sensor of one reading."""

    id: int
    device_id: str
    timestamp: str
    received_at: str | None
    sensor_type: str
    data: Any
    metadata: Any
    message_id: str | None


class ReadingsPage(msgspec.Struct, forbid_unknown_fields=True):
    """A page in (timestamp, id) order; pass `next_cursor` as `cursor` for the next."""

    readings: list[Reading]
    next_cursor: str | None
    count: int


@functools.cache
def reading_schema() -> dict[str, Any]:
    """The reading's JSON Schema, as an OpenAPI 3.1 component."""
    text = (resources.files("wireway") / "schemas" / "sensor_reading.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    schema.pop("$schema", None)

    def mark(node: Any) -> None:
        # wireway's own `rfc3339` keyword checks what `format: date-time` announces
        if isinstance(node, dict):
            if node.get("rfc3339") is True:
                node.setdefault("format", "date-time")
            for value in node.values():
                mark(value)

    mark(schema)
    return schema


def _filters() -> tuple[Param, ...]:
    return (
        Param("device_id", description="only this device"),
        Param("sensor_type", description="ld2410, pir or mq134"),
        Param("since", description="RFC 3339, inclusive", schema={"type": "string", "format": "date-time"}),
        Param("until", description="RFC 3339, exclusive", schema={"type": "string", "format": "date-time"}),
    )


def with_role(doc: RouteDoc) -> RouteDoc:
    """`doc` saying who may call it (access.ROLES: one role per route)."""
    rule = ROLES[(doc.method, doc.path)]
    who = {"public": "anyone", "device": "any key", "admin": "the admin key"}[rule.role]
    note = f" ({NOTES[rule.own]})" if rule.own else ""
    text = f"Role: {rule.role}: {who}{note}."
    return dataclasses.replace(doc, description=f"{doc.description}\n\n{text}".strip())


def route_docs(security: Security, max_batch: int = 1000) -> list[RouteDoc]:
    """Every route of the application, described (`security` gives the credentials)."""
    return [with_role(doc) for doc in _route_docs(security, max_batch)]


def _route_docs(security: Security, max_batch: int) -> list[RouteDoc]:
    auth = ApiKey("X-API-Key", bearer=True) if security.authentication == "api_key" else None
    problem = Body(ApiError)
    refused = {401: problem, 403: problem, 429: problem}
    readings_in = {
        400: Body(ApiError, description="invalid JSON or reading"),
        413: problem,
        415: problem,
        503: Body(ApiError, description="busy or stopping; retry after Retry-After"),
    }
    doc = functools.partial(RouteDoc, tags=API, auth=auth)
    return [
        doc(
            "Store one reading",
            method="POST",
            path="/api/v1/sensor-data",
            request=(Body(READING_REF),),
            responses={202: Body(ReadingAccepted), 409: problem, **readings_in, **refused},
            components={"sensor_reading": reading_schema()},
        ),
        doc(
            "Store a batch of readings (answered per reading)",
            method="POST",
            path="/api/v1/sensor-data/batch",
            request=(Body({"type": "array", "items": READING_REF, "minItems": 1, "maxItems": max_batch}),),
            responses={202: Body(BatchAccepted), **readings_in, **refused},
            components={"sensor_reading": reading_schema()},
        ),
        doc(
            "Outbox and DLQ depth", path="/api/v1/queue/status", responses={200: Body(QueueStatus), **refused}
        ),
        doc("Every device", path="/api/v1/devices", responses={200: Body(DeviceList), **refused}),
        doc(
            "Set a device's metadata (admin)",
            method="POST",
            path="/api/v1/devices/metadata",
            request=(Body(MetadataUpdate),),
            responses={200: Body(MetadataUpdated), 400: problem, **refused},
        ),
        doc(
            "One device, with its occupancy by day",
            path="/api/v1/devices/{device_id}",
            responses={200: Body(Device), 404: problem, **refused},
        ),
        doc(
            "Forget a device (admin)",
            method="DELETE",
            path="/api/v1/devices/{device_id}",
            responses={200: Body(DeviceDeleted), 404: problem, **refused},
        ),
        doc(
            "Occupied devices per location",
            path="/api/v1/occupancy",
            responses={200: Body(OccupancyByLocation), **refused},
        ),
        doc(
            "Open, acknowledged and recently cleared alerts",
            path="/api/v1/alerts",
            parameters=(
                Param("state", schema={"type": "string", "enum": ["open", "acknowledged", "cleared"]}),
                Param("device_id"),
            ),
            responses={200: Body(AlertList), **refused},
        ),
        doc(
            "Acknowledge or clear an alert (admin)",
            method="POST",
            path="/api/v1/alerts/{alert_id}/{action}",
            parameters=(
                Param("alert_id", "path"),
                Param("action", "path", schema={"type": "string", "enum": ["ack", "clear"]}),
            ),
            responses={200: Body(Alert), 404: problem, **refused},
        ),
        doc(
            "Stored readings, a page at a time",
            path="/api/v1/readings",
            parameters=(
                *_filters(),
                Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
                Param("cursor", description="next_cursor of the previous page"),
            ),
            responses={200: Body(ReadingsPage), 400: problem, 503: problem, **refused},
        ),
        doc(
            "Every matching stored reading, streamed",
            path="/api/v1/readings/export",
            parameters=(
                *_filters(),
                Param("format", schema={"type": "string", "enum": ["csv", "jsonl"], "default": "csv"}),
            ),
            responses={
                200: (
                    Body({"type": "string"}, "text/csv", "CSV with a header row, or JSON lines"),
                    Body({"type": "string"}, "application/x-ndjson"),
                ),
                400: problem,
                503: problem,
                **refused,
            },
        ),
    ]


def documented(routes: list[BaseRoute], security: Security, max_batch: int = 1000) -> list[BaseRoute]:
    """The application's routes, each carrying its description."""
    return describe(routes, route_docs(security, max_batch))
