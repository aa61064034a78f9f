"""What /metrics shows of each service: its state, readiness, the start of its running
process (its uptime is the time now minus that), its restarts and its last exit code."""

from __future__ import annotations

import typing

from prometheus_client import Enum, Gauge

from wireway.observability.metrics import REGISTRY, service_state
from wireway.supervision import ServiceStatus, State

STATE = Enum(
    "wireway_service_state",
    "A service's state (the one it is in is 1).",
    ["service"],
    states=list(typing.get_args(State)),
    registry=REGISTRY,
)
STARTED = Gauge(
    "wireway_service_start_time_seconds",
    "When a service's running process started (epoch seconds; 0 while none runs).",
    ["service"],
    registry=REGISTRY,
)
LAST_EXIT = Gauge(
    "wireway_service_last_exit_code",
    "The exit code of a service's last run (-N: ended by signal N).",
    ["service"],
    registry=REGISTRY,
)


def show(status: ServiceStatus) -> None:
    """A service's gauges as its status says."""
    service_state(status.name, status.state in ("starting", "ready"), status.ready)
    STATE.labels(status.name).state(status.state)
    STARTED.labels(status.name).set(status.started_at or 0)
    if status.last_exit_code is not None:
        LAST_EXIT.labels(status.name).set(status.last_exit_code)
