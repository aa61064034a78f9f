"""`sensor_http`: the existing service's routes, POST /api/v1/sensor-data and /batch."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from wireway.apps.sensor_ingest.api import api_routes
from wireway.apps.sensor_ingest.app import SensorApp
from wireway.apps.sensor_ingest.auth import AuthError, Principal
from wireway.apps.sensor_ingest.enrich import reading_errors
from wireway.apps.sensor_ingest.metrics import ERRORS
from wireway.apps.sensor_ingest.responses import authenticate, err
from wireway.apps.sensor_ingest.routes_doc import documented
from wireway.connectors.base import IngestResult, Input, InputContext
from wireway.connectors.bodies import Refused, decode_json, read_body
from wireway.connectors.sql.base import DEFAULT_OWN_SCHEMA, OWN_SCHEMA
from wireway.envelope import Message, canonical_timestamp, now_rfc3339, stable_id
from wireway.errors import BackpressureError
from wireway.observability import logging as log
from wireway.registry import register_input


class SensorHttpConfig(msgspec.Struct, forbid_unknown_fields=True):
    """The sensor application's HTTP ingestion and its shared settings.

    Routes: `POST /api/v1/sensor-data` (one reading) and `POST /api/v1/sensor-data/batch`
    (1 to `max_batch` readings), answered 202 only once the readings are in the
    durable buffer; 400 with every broken rule; 409 for a reading already accepted
    (same device_id and timestamp); 401/403/413/415/429 from the `security:` section.
    A reading resent while its first attempt is under way waits for that attempt and
    answers by its outcome (409 once the reading is kept).

    A body that is not plain JSON (invalid UTF-8, NaN, numbers out of range, nesting
    deeper than 64 levels, a repeated key) gets 400 with the reason; one not received
    within `security.body_timeout` seconds gets 408. Every refusal counts in
    `sensor_data_errors_total{error_type}`.
    """

    storage: Annotated[
        str, Meta(description="sqlite:///path or postgresql://... (default: <data-dir>/wireway.db)")
    ] = ""
    unknown_devices: Literal["accept", "reject"] = "accept"
    schema: Annotated[
        str,
        Meta(
            pattern=OWN_SCHEMA.pattern,
            description="where the application keeps its own tables (devices, keys, alerts, "
            "occupancy): a PostgreSQL schema, or the table-name prefix `<schema>_` in SQLite",
        ),
    ] = DEFAULT_OWN_SCHEMA
    max_batch: Annotated[int, Meta(ge=1, le=100000)] = 1000


logger = log.get("sensor-http")
# error_type of sensor_data_errors_total for a body refused before any reading is read
REFUSALS = {"invalid_json": "json_parse_error", "too_large": "payload_too_large"}


def reading_id(reading: dict[str, Any]) -> str:
    """The messageId of a bare reading: UUIDv5 of device_id and canonical timestamp."""
    return stable_id(reading["device_id"], canonical_timestamp(reading["timestamp"]))


def log_refused(reading: Any, errors: list[str]) -> None:
    """Log a refused reading's messageId when it has one (its device_id and timestamp)."""
    try:
        message_id = reading_id(reading)
    except (KeyError, TypeError, ValueError, OverflowError):
        return  # no id to log: the sender gave no device_id and timestamp
    logger.info("reading refused", message_id=message_id, errors=len(errors))


@register_input("sensor_http", config=SensorHttpConfig)
class SensorHttpInput(Input):
    """POST routes of the sensor application."""

    service_class = SensorApp
    app: SensorApp

    def use_service(self, service: SensorApp) -> None:
        self.app = service
        service.configure(
            storage=self.config.storage,
            security=self.pattern.security,
            unknown_devices=self.config.unknown_devices,
            schema=self.config.schema,
            pattern=self.pattern.name,
        )
        service.checked_sources.add(self.name)  # every reading is checked here first

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        routes: list[BaseRoute] = [
            Route("/api/v1/sensor-data", self.one, methods=["POST"]),
            Route("/api/v1/sensor-data/batch", self.batch, methods=["POST"]),
        ]
        ctx.add_routes(documented(routes, self.pattern.security, self.config.max_batch))
        if not self.app.api_mounted:  # the application's read and admin API, once
            ctx.add_routes(documented(api_routes(self.app), self.pattern.security))
            self.app.api_mounted = True
        self.state = "running"

    async def body(self, request: Request) -> tuple[Any, Response | None]:
        """Authenticated, size- and type-checked JSON body, or the error response."""
        try:
            principal = authenticate(self.app, request)
        except AuthError as exc:
            return None, err(exc.status, {"error": exc.message}, exc.retry_after)
        request.state.principal = principal
        if self.ctx.full():  # refused before the body is decoded and checked (see InputContext)
            ERRORS.labels("backpressure").inc()
            return None, err(503, {"error": "Service busy, retry later"}, 1.0)
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/json":
            ERRORS.labels("unsupported_media_type").inc()
            return None, err(415, {"error": "Content-Type must be application/json"})
        limit = self.pattern.security.max_body_bytes
        try:
            return decode_json(await read_body(request, limit)), None
        except Refused as exc:
            ERRORS.labels(REFUSALS.get(exc.kind, exc.kind)).inc()
            if exc.status == 413:
                return None, err(413, {"error": "Payload too large", "limit_bytes": limit})
            if exc.status != 400:
                return None, err(exc.status, {"error": exc.message})
            # the existing service's 400 body, whatever the fault (clients branch on it)
            return None, err(400, {"error": "Invalid sensor data", "details": [exc.message]})

    def envelope(self, reading: dict[str, Any], received_at: str) -> Message:
        # built directly: a dict envelope would be converted (and checked) again
        return Message(
            message_id=reading_id(reading), timestamp=received_at, payload=reading, source=self.name
        )

    async def ingest(self, envelopes: list[Message], *, keep_valid: bool = False) -> IngestResult | Response:
        """Ingest readings this input has already checked.

        The pattern's refusals (an unknown device) come back in the result, never to
        the DLQ: the client is told. Without `keep_valid` nothing is kept if any
        reading is refused; with it the others are (a batch answers per reading).
        A full buffer is the 503 response."""
        try:
            return await self.ctx.ingest(
                envelopes, source=self.name, reject_invalid=True, keep_valid=keep_valid, wait=False
            )
        except BackpressureError as exc:
            ERRORS.labels("backpressure").inc()
            return err(503, {"error": "Service busy, retry later"}, max(1.0, exc.retry_after))
        except Exception as exc:  # noqa: BLE001  (the commit failed: the sender must resend;
            # outputs may have seen the readings already, as after a crash: at-least-once)
            ERRORS.labels("buffer_error").inc()
            logger.error("readings not committed", input=self.name, error=f"{type(exc).__name__}: {exc}")
            return err(503, {"error": "Buffer unavailable, retry later"}, 1.0)

    async def one(self, request: Request) -> Response:
        if self.state != "running":
            return err(503, {"error": "Service is shutting down"}, 1)
        value, problem = await self.body(request)
        if problem is not None:
            return problem
        errors = reading_errors(value)
        if errors:
            ERRORS.labels("validation_error").inc()
            log_refused(value, errors)
            return err(400, {"error": "Invalid sensor data", "details": errors})
        principal: Principal = request.state.principal
        if principal.device_id and principal.device_id != value["device_id"]:
            ERRORS.labels("forbidden").inc()
            return err(
                403,
                {
                    "error": "This key may only post readings of its own device",
                    "device_id": value["device_id"],
                },
            )
        received_at = now_rfc3339()
        env = self.envelope(value, received_at)
        mid = env.message_id
        in_flight = self.app.in_flight
        if mid in in_flight:  # the same reading, sent again while its first attempt runs
            await in_flight.settled([mid])
        if mid in self.app.seen:
            ERRORS.labels("duplicate").inc()
            return err(409, {"error": "Duplicate reading", "device_id": value["device_id"]})
        in_flight.hold([mid])
        try:
            outcome = await self.ingest([env])
        finally:
            in_flight.release([mid])
        if isinstance(outcome, Response):
            return outcome
        if outcome.rejected:
            details = [r for rej in outcome.rejected for r in rej.reasons]
            return err(400, {"error": "Invalid sensor data", "details": details})
        return JSONResponse(
            {
                "message": "Sensor data accepted",
                "message_id": env.message_id,
                "device_id": value["device_id"],
                "timestamp": received_at,
            },
            status_code=202,
        )

    async def batch(self, request: Request) -> Response:
        if self.state != "running":
            return err(503, {"error": "Service is shutting down"}, 1)
        value, problem = await self.body(request)
        if problem is not None:
            return problem
        if not isinstance(value, list) or not 1 <= len(value) <= self.config.max_batch:
            too_many = isinstance(value, list) and len(value) > self.config.max_batch
            ERRORS.labels("batch_too_large" if too_many else "validation_error").inc()
            return err(
                400,
                {
                    "error": "Invalid sensor data",
                    "details": [f"expected a JSON array of 1 to {self.config.max_batch} readings"],
                },
            )
        principal: Principal = request.state.principal
        received_at = now_rfc3339()
        seen = self.app.seen
        in_flight = self.app.in_flight
        results: list[dict[str, Any]] = []
        candidates: list[tuple[int, Message]] = []  # (place in results, envelope)
        in_batch: set[str] = set()
        for reading in value:
            device = reading.get("device_id") if isinstance(reading, dict) else None
            if not isinstance(device, str):  # echoed back as the answer's device_id (a string)
                device = None
            errors = reading_errors(reading)
            if errors:
                ERRORS.labels("validation_error").inc()
                log_refused(reading, errors)
                results.append({"device_id": device, "status": "failed", "error": "; ".join(errors)})
                continue
            if principal.device_id and principal.device_id != device:
                ERRORS.labels("forbidden").inc()
                results.append(
                    {
                        "device_id": device,
                        "status": "failed",
                        "error": "this key may only post readings of its own device",
                    }
                )
                continue
            env = self.envelope(reading, received_at)
            mid = env.message_id
            if mid in in_batch:
                ERRORS.labels("duplicate").inc()
                results.append({"device_id": device, "status": "duplicate"})
                continue
            in_batch.add(mid)
            candidates.append((len(results), env))
            results.append({"device_id": device, "status": "accepted", "message_id": mid})
        await in_flight.settled([env.message_id for _, env in candidates])
        todo: list[Message] = []
        slots: list[int] = []  # per message of todo, its place in results
        for slot, env in candidates:
            if env.message_id in seen:
                ERRORS.labels("duplicate").inc()
                results[slot] = {"device_id": results[slot]["device_id"], "status": "duplicate"}
            else:
                slots.append(slot)
                todo.append(env)
        if todo:
            mine = [env.message_id for env in todo]
            in_flight.hold(mine)
            try:
                outcome = await self.ingest(todo, keep_valid=True)
            finally:
                in_flight.release(mine)
            if isinstance(outcome, Response):
                return outcome
            for rej in outcome.rejected:  # refused by the pattern (an unknown device)
                if 0 <= rej.index < len(slots):
                    slot = slots[rej.index]
                    results[slot] = {
                        "device_id": results[slot]["device_id"],
                        "status": "failed",
                        "error": "; ".join(rej.reasons),
                    }
        return JSONResponse(
            {"message": "Batch processed", "total": len(value), "results": results}, status_code=202
        )
