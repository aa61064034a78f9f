"""What the sensor application's HTTP routes share: error answers and authentication."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from wireway.apps.sensor_ingest.app import SensorApp
from wireway.apps.sensor_ingest.auth import AuthError, Principal
from wireway.apps.sensor_ingest.metrics import ERRORS


def err(status: int, body: dict[str, Any], retry_after: float = 0) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else None
    return JSONResponse(body, status_code=status, headers=headers)


def credentials(request: Request) -> tuple[str | None, str | None]:
    auth = request.headers.get("authorization", "")
    bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    return request.headers.get("x-api-key"), bearer


def authenticate(app: SensorApp, request: Request) -> Principal:
    assert app.keys is not None
    try:
        return app.keys.authenticate(*credentials(request))
    except AuthError as exc:
        kind = {401: "auth_error", 429: "rate_limited"}.get(exc.status, "unavailable")
        ERRORS.labels(kind).inc()
        raise
