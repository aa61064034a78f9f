"""The control API's routes, as the kit's Node service answered them: `{"success":
true, ...}` with 200, or `{"success": false, "error": CODE, "message", "details",
"timestamp"}` (400 INVALID_SCRIPT / VALIDATION_ERROR / INVALID_TYPE, 401, 404
NOT_RUNNING, 409 ALREADY_RUNNING, 429 RATE_LIMITED, 500 EXECUTION_FAILED /
STOP_FAILED, 503 KISMET_UNAVAILABLE)."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from wireway.apps.fieldkit.api import loopback
from wireway.apps.fieldkit.control import kismet_data
from wireway.apps.fieldkit.control.errors import failure
from wireway.apps.fieldkit.control.scripts import ControlError, check_options, now_iso

if TYPE_CHECKING:
    from wireway.apps.fieldkit.control.service import KitControl

BODY_LIMIT = 64 * 1024
Handler = Callable[[Request], Awaitable[Response]]


def success(**body: Any) -> JSONResponse:
    return JSONResponse({"success": True, **body, "timestamp": now_iso()})


async def body_of(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > BODY_LIMIT:
        raise ControlError(413, "PAYLOAD_TOO_LARGE", "Request body too large", f"at most {BODY_LIMIT} bytes")
    if not raw.strip():
        return {}
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ControlError(400, "VALIDATION_ERROR", "Request body is not valid JSON", None) from None
    if not isinstance(data, dict):
        raise ControlError(400, "VALIDATION_ERROR", "Request body must be a JSON object", None)
    return data


class Limiter:
    """At most `per_minute` requests per client address in any minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.seen: dict[str, deque[float]] = {}

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        times = self.seen.setdefault(client, deque())
        while times and now - times[0] >= 60.0:
            times.popleft()
        if len(times) >= self.per_minute:
            return False
        times.append(now)
        if len(self.seen) > 10_000:  # forget idle clients
            for key in [k for k, v in self.seen.items() if not v]:
                del self.seen[key]
        return True


class ControlApi:
    def __init__(self, kit: KitControl) -> None:
        self.kit = kit
        self.limiter = Limiter(kit.options.rate_limit)
        self.lock = asyncio.Lock()  # one start or stop at a time: no two starts race

    def refused(self, conn: HTTPConnection) -> ControlError | None:
        key = self.kit.options.api_key
        if not key and not loopback(conn):  # no key set: starting programs is for this host only
            return ControlError(
                401, "UNAUTHORIZED", "Set FIELDKIT_CONTROL_KEY to use this API from another host", None
            )
        if key:
            auth = conn.headers.get("authorization", "")
            bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            given = conn.headers.get("x-api-key") or bearer or conn.query_params.get("key", "")
            if not (given and hmac.compare_digest(given.encode(), key.encode())):
                return ControlError(401, "UNAUTHORIZED", "Missing or invalid API key", "X-API-Key header")
        client = conn.client.host if conn.client else "?"
        if not self.limiter.allow(client):
            return ControlError(
                429, "RATE_LIMITED", "Too many requests", f"at most {self.limiter.per_minute} a minute"
            )
        return None

    def guarded(self, handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            refused = self.refused(request)
            if refused is not None:
                return failure(refused)
            try:
                return await handler(request)
            except ControlError as exc:
                return failure(exc)

        return run

    async def run_script(self, request: Request) -> Response:
        data = await body_of(request)
        scripts = self.kit.scripts
        script = scripts.script(data.get("script"))
        env = check_options(data.get("options"), self.kit.options)
        async with self.lock:
            result = await scripts.run(script, env)
        self.kit.status_changed(script)
        return success(message="Script started successfully", script=script, pid=result["pid"])

    async def stop_script(self, request: Request) -> Response:
        data = await body_of(request)
        scripts = self.kit.scripts
        script = scripts.script(data.get("script"))
        force = data.get("force", False)
        if not isinstance(force, bool):
            raise ControlError(400, "VALIDATION_ERROR", "force must be true or false", force)
        async with self.lock:
            result = await scripts.stop(script, force)
        self.kit.status_changed(script)
        return success(message="Script stopped successfully", script=script, pid=result["pid"])

    async def script_status(self, request: Request) -> Response:
        asked = request.query_params.get("script")
        scripts = self.kit.scripts
        if asked is None:
            return success(status=scripts.every_status())
        return success(status=scripts.status(scripts.script(asked)))

    async def info(self, request: Request) -> Response:
        body = await asyncio.to_thread(self.kit.info.get)
        return success(**body)

    async def kismet(self, request: Request) -> Response:
        kind, limit, since, fmt = kismet_data.parse_query(dict(request.query_params))
        board = self.kit.board
        answers, why = board.available() if board is not None else (False, "no kismet input is configured")
        if not answers or board is None:
            raise ControlError(
                503, "KISMET_UNAVAILABLE", "Kismet service is not running or not responding", why
            )
        data = kismet_data.select(kind, limit, since, board.latest(), board.alerts())
        if fmt == "csv":
            name = f"kismet-{kind}-{int(time.time() * 1000)}.csv"
            headers = {"content-disposition": f'attachment; filename="{name}"'}
            return Response(kismet_data.to_csv(data), media_type="text/csv", headers=headers)
        return success(data=data)

    async def websocket(self, ws: WebSocket) -> None:
        refused = self.refused(ws)
        if refused is not None:
            await ws.close(code=4401 if refused.status == 401 else 4429)
            return
        await self.kit.hub.serve(ws, self.kit.status_for)


# (method, path) -> role: "admin" needs the control key when one is set
# (FIELDKIT_CONTROL_KEY, else FIELDKIT_API_KEY), the WebSocket too (`?key=`).
CONTROL_ROLES: dict[tuple[str, str], str] = {
    ("POST", "/api/webhook/run-script"): "admin",
    ("POST", "/api/webhook/stop-script"): "admin",
    ("GET", "/api/webhook/script-status"): "admin",
    ("GET", "/api/webhook/info"): "admin",
    ("GET", "/api/webhook/kismet-data"): "admin",
    ("WEBSOCKET", "/webhook"): "admin",
}


def control_app(kit: KitControl) -> Starlette:
    api = ControlApi(kit)
    handlers: dict[str, Handler] = {
        "/api/webhook/run-script": api.run_script,
        "/api/webhook/stop-script": api.stop_script,
        "/api/webhook/script-status": api.script_status,
        "/api/webhook/info": api.info,
        "/api/webhook/kismet-data": api.kismet,
    }
    routes: list[Any] = [
        Route(path, api.guarded(handlers[path]), methods=[method])
        for (method, path), role in CONTROL_ROLES.items()
        if method != "WEBSOCKET" and role == "admin"
    ]
    routes.append(WebSocketRoute("/webhook", api.websocket))  # checks the key itself
    return Starlette(routes=routes)
