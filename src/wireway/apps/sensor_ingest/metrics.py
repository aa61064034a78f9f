"""The sensor application's metrics, with the names its teams' dashboards use."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from wireway.observability.metrics import REGISTRY

ERRORS = Counter(
    "sensor_data_errors_total",
    "Rejected or failed sensor data, by error type.",
    ["error_type"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "sensor_data_processing_latency_seconds",
    "Seconds from receipt to the end of an operation (store: receive -> committed).",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
OCCUPANCY = Gauge(
    "occupancy",
    "1 while a device's area is occupied.",
    ["device_id", "location"],
    registry=REGISTRY,
)
OCCUPIED_BY_LOCATION = Gauge(
    "occupancy_count", "Occupied devices per location.", ["location"], registry=REGISTRY
)
_OCCUPANCY_LOCATION: dict[str, str] = {}  # device_id -> the location label of its gauge


def occupancy_changed(event: Mapping[str, Any], occupied_in: Callable[[str], int]) -> None:
    """Set `occupancy{device_id,location}` and `occupancy_count{location}` from one
    occupancy change event; `occupied_in(location)` counts the occupied devices there.

    A device that moved keeps one series: the one under its old location is removed
    and that location's count set again.
    """
    device_id, location = event["device_id"], event["location"]
    before = _OCCUPANCY_LOCATION.get(device_id)
    if before is not None and before != location:
        with contextlib.suppress(KeyError):
            OCCUPANCY.remove(device_id, before)
        OCCUPIED_BY_LOCATION.labels(before).set(occupied_in(before))
    _OCCUPANCY_LOCATION[device_id] = location
    OCCUPANCY.labels(device_id, location).set(1 if event["occupied"] else 0)
    OCCUPIED_BY_LOCATION.labels(location).set(occupied_in(location))


class _Ingested:
    """sensor_data_ingested_total: a device_id label only with metrics.per_device."""

    def __init__(self) -> None:
        self.counter: Counter | None = None
        self.per_device = False
        self.children: dict[object, Any] = {}

    def setup(self, per_device: bool) -> None:
        if self.counter is None:
            self.per_device = per_device
            labels = ["sensor_type", "device_id"] if per_device else ["sensor_type"]
            self.counter = Counter(
                "sensor_data_ingested_total",
                "Sensor readings accepted, by sensor type.",
                labels,
                registry=REGISTRY,
            )

    def inc(self, sensor_type: str, device_id: str, amount: int = 1) -> None:
        self.child(sensor_type, device_id).inc(amount)

    def child(self, sensor_type: str, device_id: str) -> Any:
        """The counter for these labels (device_id is ignored without per_device)."""
        if self.counter is None:
            self.setup(False)
        assert self.counter is not None
        key = (sensor_type, device_id) if self.per_device else sensor_type
        child = self.children.get(key)
        if child is None:  # labels() is a locked lookup: keep the children
            child = self.children[key] = (
                self.counter.labels(sensor_type, device_id)
                if self.per_device
                else self.counter.labels(sensor_type)
            )
        return child

    def count(self, readings: Iterable[dict[str, Any]]) -> None:
        """Count a batch of accepted readings, one per sensor they carry: a single
        inc(n) per label set (a locked add each) rather than one per reading."""
        if self.counter is None:
            self.setup(False)
        if self.per_device:
            by_device = collections.Counter(
                (t, r["device_id"]) for r in readings for t in r.get("sensors", {})
            )
            for (sensor_type, device_id), n in by_device.items():
                self.child(sensor_type, device_id).inc(n)
        else:
            by_type = collections.Counter(chain.from_iterable(r.get("sensors", {}) for r in readings))
            for sensor_type, n in by_type.items():
                self.child(sensor_type, "").inc(n)


INGESTED = _Ingested()

_PREFIXES = (
    ("invalid JSON", "json_parse_error"),
    ("duplicate", "duplicate"),
    ("validation", "validation_error"),
    ("topic mismatch", "topic_mismatch"),
    ("unknown device", "unknown_device"),
    ("invalid envelope", "validation_error"),
)


def count_rejection(pattern: str, reason: str) -> None:
    """Map a rejection reason to its error_type and count it."""
    for prefix, kind in _PREFIXES:
        if reason.startswith(prefix) or prefix in reason[:40]:
            ERRORS.labels(kind).inc()
            return
    ERRORS.labels("processing_error").inc()
