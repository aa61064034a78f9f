"""The descriptions of the engine's own routes and of the `http` input's routes.

The Structs here are the shapes of the bodies those routes answer; the tests decode
real answers into them (`msgspec.convert`, unknown fields refused), so the document
says what the process actually sends.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from wireway.apispec.openapi import ApiKey, Body, RouteDoc


class Problem(msgspec.Struct, forbid_unknown_fields=True):
    """An error answer."""

    error: str
    path: str | None = None


class Health(msgspec.Struct, forbid_unknown_fields=True):
    """`/health`: `unhealthy` (503) when messages cannot be kept, `degraded` when a
    component is down, else `healthy`."""

    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: str
    services: dict[str, Literal["up", "down"]]


class Readiness(msgspec.Struct, forbid_unknown_fields=True):
    """`/ready`: whether to send traffic here, and which components are down (also while
    ready: a component may be down without holding messages back)."""

    ready: bool
    timestamp: str
    down: list[str]


class Counts(msgspec.Struct, forbid_unknown_fields=True):
    in_: int = msgspec.field(name="in")
    out: int = 0
    error: int = 0
    filtered: int = 0


class InputStatus(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    type: str
    state: str


class OutputStatus(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    type: str
    state: str
    delivered: int
    errors: int
    buffer_depth: int
    breaker: str
    last_error: str


class PatternStatus(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    type: str
    file: str
    state: str
    uptime_seconds: float
    counts: Counts
    buffer_depth: int
    dlq_depth: int
    inputs: list[InputStatus]
    outputs: list[OutputStatus]


class ServiceBody(msgspec.Struct, forbid_unknown_fields=True):
    """A service as it is now (see wireway.supervision.ServiceStatus)."""

    name: str
    state: str
    pid: int | None
    started_at: float | None
    uptime_seconds: float | None
    ready: bool
    restarts: int
    last_exit_code: int | None
    last_run_time: float | None
    next_start_in: float | None
    depends_on: list[str]
    pattern: str | None
    leases: list[str] = []  # held by its running process (`iface:wlan2`)


class Status(msgspec.Struct, forbid_unknown_fields=True):
    """`/status`: every pattern with its inputs, outputs and counts."""

    timestamp: str
    uptime_seconds: float
    accepting: bool
    data_dir: str
    patterns: list[PatternStatus]
    services: list[ServiceBody] = []  # the deployment's `services:`, when it declares any


class Accepted(msgspec.Struct, forbid_unknown_fields=True):
    """Messages taken: in every outbox of the pattern, delivered from there."""

    accepted: int
    ids: list[str]


class RejectedValue(msgspec.Struct, forbid_unknown_fields=True):
    """One value refused: its place (index in the body, or line of JSON lines) and why."""

    reasons: list[str]
    index: int | None = None
    line: int | None = None


class Refused(msgspec.Struct, forbid_unknown_fields=True):
    """Nothing was kept; `rejected` says which values and why."""

    error: str
    rejected: list[RejectedValue] = []


PROBLEM = Body(Problem, description="the reason, in `error`")
ENGINE = ("engine",)

ENGINE_ROUTES: tuple[RouteDoc, ...] = (
    RouteDoc(
        "Liveness and the state of every component",
        path="/health",
        responses={
            200: Body(Health, description="healthy or degraded"),
            503: Body(Health, description="unhealthy: messages cannot be kept"),
        },
        tags=ENGINE,
    ),
    RouteDoc(
        "Readiness: whether to send traffic here",
        path="/ready",
        responses={200: Body(Readiness, description="ready"), 503: Body(Readiness, description="not ready")},
        tags=ENGINE,
    ),
    RouteDoc(
        "Patterns, inputs, outputs and counts", path="/status", responses={200: Body(Status)}, tags=ENGINE
    ),
    RouteDoc(
        "Prometheus metrics",
        path="/metrics",
        responses={200: Body({"type": "string"}, "text/plain; version=0.0.4", "Prometheus text format")},
        tags=ENGINE,
    ),
    RouteDoc(
        "This document",
        path="/openapi.json",
        responses={200: Body({"type": "object"}, description="OpenAPI 3.1")},
        tags=ENGINE,
    ),
)


def http_input_doc(path: str, pattern: str, api_key_header: str | None, max_items: int) -> RouteDoc:
    """The description of an `http` input's route."""
    any_json: dict[str, Any] = {"description": "one message, or an array of messages"}
    return RouteDoc(
        f"Messages into pattern {pattern}",
        method="POST",
        path=path,
        description=f"A JSON value (one message), a JSON array (up to {max_items} messages) or "
        "JSON lines. Answered once every message is in the pattern's outboxes.",
        request=(
            Body(any_json),
            Body({"type": "string", "description": "one JSON value per line"}, "application/x-ndjson"),
        ),
        responses={
            202: Body(Accepted, description="kept; delivered from the outboxes"),
            400: Body(Refused, description="invalid JSON or refused by the pattern; nothing kept"),
            401: Body(Problem, description="missing or invalid credentials"),
            413: Body(Problem, description="body or message count over the limit"),
            415: Body(Problem, description="not JSON"),
            503: Body(Problem, description="buffer full or stopping; retry after Retry-After"),
        },
        tags=(pattern,),
        auth=ApiKey(api_key_header, bearer=True) if api_key_header else None,
    )
