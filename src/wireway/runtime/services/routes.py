"""The engine's HTTP routes for its services (what `wireway services` calls).

GET /services, GET /services/{name}, POST /services/{name}/start|stop|restart
(`?force=true` on stop: SIGKILL at once after the stop signal), GET
/services/{name}/logs (`?lines=N` the last lines, or `?offset=B` what was written
from byte B on; the `X-Log-Offset` header gives the offset to ask from next).
They change what runs on the host, so only a client on the loopback may call them,
and every one of them needs the admin credential (`SERVICE_ROLES`): the process's
credential check when an application that keeps keys mounted one (the sensor
application: its admin key; a device key gets 403), else `WIREWAY_ADMIN_KEY` when
set (`wireway services` sends it); with neither, the loopback is the only guard.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import ipaddress
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from wireway.apispec.engine_routes import ServiceBody
from wireway.apispec.openapi import ATTRIBUTE, Body, Param, RouteDoc, docs_of, document
from wireway.supervision import ServiceControl, ServiceError, ServiceStatus

START_WAIT = 30.0  # seconds a start request waits for readiness before answering 202
MAX_LOG_BYTES = 1024 * 1024
STATUS_CODES = {
    "UNKNOWN_SERVICE": 404,
    "NOT_RUNNING": 409,
    "ALREADY_RUNNING": 409,
    "LEASE_HELD": 409,
    "EXECUTION_FAILED": 500,
    "STOP_FAILED": 500,
}


class ServiceList(msgspec.Struct, forbid_unknown_fields=True):
    services: list[ServiceBody]


class ServiceProblem(msgspec.Struct, forbid_unknown_fields=True):
    """`error`: UNKNOWN_SERVICE, ALREADY_RUNNING, NOT_RUNNING, EXECUTION_FAILED,
    STOP_FAILED, LEASE_HELD, FORBIDDEN, UNAUTHORIZED, RATE_LIMITED or UNAVAILABLE."""

    error: str
    message: str


TAGS = ("services",)
INTEGER = {"type": "integer"}
PROBLEM = Body(ServiceProblem, description="the code, in `error`")
FORBIDDEN = Body(ServiceProblem, description="not from this host, or not the admin key")
UNAUTHORIZED = Body(ServiceProblem, description="no or invalid credentials")
DENIED: dict[int, str | Body | tuple[Body, ...]] = {401: UNAUTHORIZED, 403: FORBIDDEN}
ERRORS: dict[int, str | Body | tuple[Body, ...]] = {
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    404: Body(ServiceProblem, description="UNKNOWN_SERVICE"),
    409: Body(ServiceProblem, description="ALREADY_RUNNING, NOT_RUNNING or LEASE_HELD"),
    500: Body(ServiceProblem, description="EXECUTION_FAILED or STOP_FAILED"),
}


def as_dict(status: ServiceStatus) -> dict[str, Any]:
    body = dataclasses.asdict(status)
    body["depends_on"] = list(status.depends_on)
    body["uptime_seconds"] = round(time.time() - status.started_at, 1) if status.started_at else None
    return body


def _problem(exc: ServiceError) -> JSONResponse:
    status = STATUS_CODES.get(exc.code, 500)
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=status)


def _local(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("testclient", "localhost")


# every route is an admin operation; docs/security.md lists this table
SERVICE_ROLES: dict[tuple[str, str], str] = {
    ("GET", "/services"): "admin",
    ("GET", "/services/{name}"): "admin",
    ("GET", "/services/{name}/logs"): "admin",
    ("POST", "/services/{name}/start"): "admin",
    ("POST", "/services/{name}/stop"): "admin",
    ("POST", "/services/{name}/restart"): "admin",
}
GATE = "wireway_gate"  # set on an application's guarded endpoints: its credential check


def _gate(request: Request) -> Callable[[Request], Any] | None:
    """The credential check an application mounted on this server, if any (it travels
    with its routes, so it is this process's and no other's)."""
    for route in getattr(request.app, "routes", ()):
        check = getattr(getattr(route, "endpoint", None), GATE, None)
        if check is not None:
            return check  # type: ignore[no-any-return]
    return None


def _refused(request: Request) -> JSONResponse | None:
    """401/403 unless the caller holds the admin credential (see the module's docstring)."""
    if not _local(request):
        return JSONResponse({"error": "FORBIDDEN", "message": "only from this host"}, status_code=403)
    check = _gate(request)
    if check is not None:
        try:
            principal = check(request)
        except Exception as exc:  # the application's AuthError: its status and message
            status = getattr(exc, "status", None)
            if not isinstance(status, int):
                raise
            code = {401: "UNAUTHORIZED", 429: "RATE_LIMITED"}.get(status, "UNAVAILABLE")
            return JSONResponse({"error": code, "message": str(exc)}, status_code=status)
        if not getattr(principal, "admin", False):
            return JSONResponse({"error": "FORBIDDEN", "message": "admin key required"}, status_code=403)
        return None
    wanted = os.environ.get("WIREWAY_ADMIN_KEY", "")
    if not wanted:
        return None
    auth = request.headers.get("authorization", "")
    given = request.headers.get("x-api-key") or (auth[7:].strip() if auth[:7].lower() == "bearer " else "")
    # digests of equal length, compared in constant time; no device keys here: a wrong key is 401
    digest = hashlib.sha256(given.encode()).digest()
    if not hmac.compare_digest(digest, hashlib.sha256(wanted.encode()).digest()):
        return JSONResponse({"error": "UNAUTHORIZED", "message": "admin key required"}, status_code=401)
    return None


def tail(path: Path, lines: int) -> tuple[bytes, int]:
    """The last `lines` lines of a file, and its size."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - MAX_LOG_BYTES))
            data = f.read()
    except FileNotFoundError:
        return b"", 0
    kept = data.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return b"".join(kept), size


def read_from(path: Path, offset: int) -> tuple[bytes, int]:
    """What was written from `offset` on (from the top when the file was rotated)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(offset if offset <= size else 0)
            data = f.read(MAX_LOG_BYTES)
            return data, f.tell()
    except FileNotFoundError:
        return b"", 0


def service_routes(control: ServiceControl) -> list[BaseRoute]:
    async def guarded(request: Request, action: str) -> Response:
        refused = _refused(request)
        if refused is not None:
            return refused
        name = request.path_params.get("name")
        try:
            if action == "list":
                return JSONResponse({"services": [as_dict(s) for s in control.status()]})
            assert name is not None
            if action == "show":
                return JSONResponse(as_dict(control.status(name)[0]))
            if action == "logs":
                return _logs(request, control.log_path(name))
            if action == "stop":
                force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
                return JSONResponse(as_dict(await control.stop(name, force=force)))
            run = control.start(name) if action == "start" else control.restart(name)
            task = asyncio.ensure_future(run)
            try:
                status = await asyncio.wait_for(asyncio.shield(task), START_WAIT)
            except TimeoutError:  # still starting: it goes on in the background
                return JSONResponse(as_dict(control.status(name)[0]), status_code=202)
            return JSONResponse(as_dict(status))
        except ServiceError as exc:
            return _problem(exc)

    async def list_(request: Request) -> Response:
        return await guarded(request, "list")

    async def show(request: Request) -> Response:
        return await guarded(request, "show")

    async def logs(request: Request) -> Response:
        return await guarded(request, "logs")

    async def start(request: Request) -> Response:
        return await guarded(request, "start")

    async def stop(request: Request) -> Response:
        return await guarded(request, "stop")

    async def restart(request: Request) -> Response:
        return await guarded(request, "restart")

    one = Body(ServiceBody)
    routes = [
        document(
            Route("/services", list_, methods=["GET"]),
            RouteDoc(
                "Every service",
                responses={200: Body(ServiceList), **DENIED},
                tags=TAGS,
            ),
        ),
        document(
            Route("/services/{name}", show, methods=["GET"]),
            RouteDoc(
                "One service",
                responses={200: one, 404: PROBLEM, **DENIED},
                tags=TAGS,
            ),
        ),
        document(
            Route("/services/{name}/logs", logs, methods=["GET"]),
            RouteDoc(
                "A service's output",
                description="`lines`: the last lines; `offset`: from that byte on. "
                "The `X-Log-Offset` header is where to read from next.",
                parameters=(
                    Param("lines", schema={"type": "integer"}),
                    Param("offset", schema={"type": "integer"}),
                ),
                responses={
                    200: Body({"type": "string"}, "text/plain"),
                    404: PROBLEM,
                    401: UNAUTHORIZED,
                    403: FORBIDDEN,
                },
                tags=TAGS,
            ),
        ),
        document(
            Route("/services/{name}/start", start, methods=["POST"]),
            RouteDoc(
                "Start a service and what it depends on",
                method="POST",
                responses={200: one, 202: Body(ServiceBody, description="still starting"), **ERRORS},
                tags=TAGS,
            ),
        ),
        document(
            Route("/services/{name}/stop", stop, methods=["POST"]),
            RouteDoc(
                "Stop what depends on a service, then it",
                method="POST",
                parameters=(Param("force", description="SIGKILL at once after the stop signal"),),
                responses={200: one, **ERRORS},
                tags=TAGS,
            ),
        ),
        document(
            Route("/services/{name}/restart", restart, methods=["POST"]),
            RouteDoc(
                "Stop a service (dependents first) and start it again, then its dependents",
                method="POST",
                responses={200: one, 202: Body(ServiceBody, description="still starting"), **ERRORS},
                tags=TAGS,
            ),
        ),
    ]
    role = "Role: admin: the admin key, from this host only."
    for route in routes:  # each says its role, as the applications' routes do
        docs = docs_of(route)
        setattr(
            route,
            ATTRIBUTE,
            tuple(dataclasses.replace(d, description=f"{d.description}\n\n{role}".strip()) for d in docs),
        )
    return routes


def _logs(request: Request, path: Path) -> Response:
    try:
        offset = int(request.query_params.get("offset", "-1"))
        lines = int(request.query_params.get("lines", "100"))
    except ValueError:
        return JSONResponse({"error": "BAD_REQUEST", "message": "offset and lines are integers"}, 400)
    data, end = read_from(path, offset) if offset >= 0 else tail(path, lines)
    return Response(data, media_type="text/plain; charset=utf-8", headers={"X-Log-Offset": str(end)})
