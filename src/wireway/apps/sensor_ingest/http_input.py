"""`sensor_http`: the existing service's routes, POST /api/v1/sensor-data and /batch."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wireway.apps.sensor_ingest.app import default_storage, sensor_app
from wireway.apps.sensor_ingest.auth import AuthError, Principal
from wireway.apps.sensor_ingest.enrich import reading_errors
from wireway.apps.sensor_ingest.metrics import ERRORS
from wireway.connectors.base import Input, InputContext, Service
from wireway.connectors.http.input import read_body
from wireway.envelope import Message, canonical_timestamp, now_rfc3339, stable_id
from wireway.errors import BackpressureError
from wireway.registry import register_input


class SensorHttpConfig(msgspec.Struct, forbid_unknown_fields=True):
    """The sensor application's HTTP ingestion and its shared settings.

    Routes: `POST /api/v1/sensor-data` (one reading) and `POST /api/v1/sensor-data/batch`
    (1 to `max_batch` readings), answered 202 only once the readings are in the
    durable buffer; 400 with every broken rule; 409 for a reading already accepted
    (same device_id and timestamp); 401/403/413/415/429 from the `security:` section.
    """

    storage: Annotated[str, Meta(description="sqlite:///path or postgresql://...")] = ""
    unknown_devices: Literal["accept", "reject"] = "accept"
    max_batch: Annotated[int, Meta(ge=1, le=100000)] = 1000


def reading_id(reading: dict[str, Any]) -> str:
    """The messageId of a bare reading: UUIDv5 of device_id and canonical timestamp."""
    return stable_id(reading["device_id"], canonical_timestamp(reading["timestamp"]))


def err(status: int, body: dict[str, Any], retry_after: float = 0) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else None
    return JSONResponse(body, status_code=status, headers=headers)


def credentials(request: Request) -> tuple[str | None, str | None]:
    auth = request.headers.get("authorization", "")
    bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    return request.headers.get("x-api-key"), bearer


def authenticate(request: Request) -> Principal:
    app = sensor_app()
    assert app.keys is not None
    try:
        return app.keys.authenticate(*credentials(request))
    except AuthError as exc:
        ERRORS.labels("auth_error" if exc.status == 401 else "rate_limited").inc()
        raise


@register_input("sensor_http", config=SensorHttpConfig)
class SensorHttpInput(Input):
    """POST routes of the sensor application."""

    def __init__(self, config: SensorHttpConfig, iface: Any, pattern: Any) -> None:
        super().__init__(config, iface, pattern)
        sensor_app().configure(
            storage=config.storage or default_storage(),
            security=pattern.security,
            unknown_devices=config.unknown_devices,
        )

    def services(self) -> list[Service]:
        return [sensor_app()]

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        ctx.add_routes(
            [
                Route("/api/v1/sensor-data", self.one, methods=["POST"]),
                Route("/api/v1/sensor-data/batch", self.batch, methods=["POST"]),
            ]
        )
        self.state = "running"

    async def body(self, request: Request) -> tuple[Any, Response | None]:
        """Authenticated, size- and type-checked JSON body, or the error response."""
        try:
            principal = authenticate(request)
        except AuthError as exc:
            return None, err(exc.status, {"error": exc.message}, exc.retry_after)
        request.state.principal = principal
        if self.ctx.full():  # refused before the body is decoded and checked (see InputContext)
            ERRORS.labels("backpressure").inc()
            return None, err(503, {"error": "Service busy, retry later"}, 1.0)
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/json":
            return None, err(415, {"error": "Content-Type must be application/json"})
        limit = self.pattern.security.max_body_bytes
        raw = await read_body(request, limit)
        if raw is None:
            return None, err(413, {"error": "Payload too large", "limit_bytes": limit})
        try:
            return msgspec.json.decode(raw), None
        except msgspec.DecodeError as exc:
            ERRORS.labels("json_parse_error").inc()
            return None, err(400, {"error": "Invalid JSON", "details": [str(exc)]})

    def envelope(self, reading: dict[str, Any], received_at: str) -> Message:
        # built directly: a dict envelope would be converted (and checked) again
        return Message(
            message_id=reading_id(reading), timestamp=received_at, payload=reading, source=self.name
        )

    async def ingest(self, envelopes: list[Message]) -> Response | None:
        """Ingest readings this input has already checked (so sensor_enrich skips that)."""
        checked = sensor_app().checked
        ids = [id(m.payload) for m in envelopes]
        checked.update(ids)
        try:
            result = await self.ctx.ingest(envelopes, source=self.name, reject_invalid=True, wait=False)
        except BackpressureError as exc:
            ERRORS.labels("backpressure").inc()
            return err(503, {"error": "Service busy, retry later"}, max(1.0, exc.retry_after))
        finally:
            checked.difference_update(ids)
        if result.rejected:
            details = [r for rej in result.rejected for r in rej.reasons]
            return err(400, {"error": "Invalid sensor data", "details": details})
        return None

    async def one(self, request: Request) -> Response:
        if self.state != "running":
            return err(503, {"error": "Service is shutting down"}, 1)
        value, problem = await self.body(request)
        if problem is not None:
            return problem
        errors = reading_errors(value)
        if errors:
            ERRORS.labels("validation_error").inc()
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
        if env.message_id in sensor_app().seen:
            ERRORS.labels("duplicate").inc()
            return err(409, {"error": "Duplicate reading", "device_id": value["device_id"]})
        problem = await self.ingest([env])
        if problem is not None:
            return problem
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
            return err(
                400,
                {
                    "error": "Invalid batch",
                    "details": [f"expected a JSON array of 1 to {self.config.max_batch} readings"],
                },
            )
        principal: Principal = request.state.principal
        received_at = now_rfc3339()
        seen = sensor_app().seen
        results: list[dict[str, Any]] = []
        todo: list[Message] = []
        in_batch: set[str] = set()
        for reading in value:
            device = reading.get("device_id") if isinstance(reading, dict) else None
            errors = reading_errors(reading)
            if errors:
                ERRORS.labels("validation_error").inc()
                results.append({"device_id": device, "status": "failed", "error": "; ".join(errors)})
                continue
            if principal.device_id and principal.device_id != device:
                results.append(
                    {
                        "device_id": device,
                        "status": "failed",
                        "error": "this key may only post readings of its own device",
                    }
                )
                continue
            env = self.envelope(reading, received_at)
            if env.message_id in seen or env.message_id in in_batch:
                ERRORS.labels("duplicate").inc()
                results.append({"device_id": device, "status": "duplicate"})
                continue
            in_batch.add(env.message_id)
            todo.append(env)
            results.append({"device_id": device, "status": "accepted", "message_id": env.message_id})
        if todo:
            problem = await self.ingest(todo)
            if problem is not None:
                return problem
        return JSONResponse(
            {"message": "Batch processed", "total": len(value), "results": results}, status_code=202
        )
