"""Every metric name wireway exports, defined once."""

from __future__ import annotations

import bisect
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES = Counter(
    "wireway_messages_total",
    "Messages seen, by pattern, component and outcome.",
    ["pattern", "component", "outcome"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "wireway_processing_latency_seconds",
    "Seconds from arrival at an input to confirmation by an output.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
QUEUE_SIZE = Gauge(
    "wireway_queue_size", "Messages waiting in an output buffer.", ["queue_name"], registry=REGISTRY
)
# The same depth under the name the sensor teams' dashboards use.
QUEUE_SIZE_ALIAS = Gauge(
    "queue_size", "Messages waiting in an output buffer.", ["queue_name"], registry=REGISTRY
)
DLQ_SIZE = Gauge("wireway_dlq_size", "Messages in the dead-letter queue.", ["pattern"], registry=REGISTRY)
# Both label names carry the same value: dashboards written for either keep working.
ACTIVE_CONNECTIONS = Gauge(
    "active_connections",
    "Open connections, by kind (tcp, http, websocket, mqtt, ...).",
    ["kind", "connection_type"],
    registry=REGISTRY,
)
_open: dict[str, int] = {}
BREAKER_STATE = Gauge(
    "wireway_breaker_open",
    "1 while an output's circuit breaker is open or half-open.",
    ["queue_name"],
    registry=REGISTRY,
)

BUFFER_BYTES = Gauge(
    "wireway_buffer_bytes", "Bytes the durable buffer file uses (free pages not counted).", registry=REGISTRY
)
BUFFER_FULL = Counter(
    "wireway_buffer_full_total",
    "Times the durable buffer became full (reason: disk or max_bytes); inputs are pushed back meanwhile.",
    ["reason"],
    registry=REGISTRY,
)

MQTT_MALFORMED = Counter(
    "wireway_mqtt_malformed_packets_total",
    "Malformed packets from an MQTT broker (each closes its connection) and PUBLISH packets over "
    "max_packet_size (skipped, their message to the DLQ), by connector.",
    ["connector"],
    registry=REGISTRY,
)

MQTT_BROKER_DROPPED = Counter(
    "wireway_mqtt_broker_dropped_total",
    "Messages an MQTT broker reports it dropped ($SYS/broker/publish/messages/dropped rising, "
    "for any of its clients: a full queue), seen by an mqtt input, by connector.",
    ["connector"],
    registry=REGISTRY,
)

INPUT_ERRORS = Counter(
    "wireway_input_errors_total",
    "Attempts of an input to fetch data that failed (a poll, a connection), by pattern and input.",
    ["pattern", "input"],
    registry=REGISTRY,
)
RECORDS_SKIPPED = Counter(
    "wireway_records_skipped_total",
    "Records a format read and left out on purpose (e.g. a WiGLE row without a position fix).",
    ["format", "reason"],
    registry=REGISTRY,
)


def observe_many(histogram: Any, values: list[float]) -> None:
    """Observe a batch at once (one lock per bucket, not one call per value)."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    if bounds is None or buckets is None or not values:
        for v in values:
            histogram.observe(v)
        return
    counts = [0] * len(bounds)
    for v in values:
        counts[bisect.bisect_left(bounds, v)] += 1
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
    histogram._sum.inc(sum(values))


def connection_opened(kind: str) -> None:
    """Count one more open connection of `kind`."""
    _open[kind] = _open.get(kind, 0) + 1
    ACTIVE_CONNECTIONS.labels(kind, kind).set(_open[kind])


def connections_now(kind: str, count: int) -> None:
    """Set the count of open connections of `kind`, for kinds read off when scraped."""
    _open[kind] = count
    ACTIVE_CONNECTIONS.labels(kind, kind).set(count)


def connection_closed(kind: str) -> None:
    """Count one fewer open connection of `kind`."""
    _open[kind] = max(0, _open.get(kind, 0) - 1)
    ACTIVE_CONNECTIONS.labels(kind, kind).set(_open[kind])


def render() -> bytes:
    """The Prometheus text exposition of every metric."""
    return generate_latest(REGISTRY)


SERVICE_UP = Gauge(
    "wireway_service_up",
    "1 while a service's process runs (starting or ready).",
    ["service"],
    registry=REGISTRY,
)
SERVICE_READY = Gauge("wireway_service_ready", "1 while a service is ready.", ["service"], registry=REGISTRY)
SERVICE_RESTARTS = Counter(
    "wireway_service_restarts_total", "Times a service was started again.", ["service"], registry=REGISTRY
)


def service_state(service: str, up: bool, ready: bool) -> None:
    """A service's state changed."""
    SERVICE_UP.labels(service).set(1 if up else 0)
    SERVICE_READY.labels(service).set(1 if ready else 0)


def service_restarted(service: str) -> None:
    SERVICE_RESTARTS.labels(service).inc()
