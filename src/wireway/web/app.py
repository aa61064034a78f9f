"""ASGI app assembly: observability routes plus the routes inputs and apps add."""

from __future__ import annotations

from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from wireway import __version__
from wireway.apispec.engine_routes import ENGINE_ROUTES
from wireway.apispec.openapi import openapi_document
from wireway.envelope import now_rfc3339
from wireway.observability.metrics import render


class Observed(Protocol):
    """What the observability routes ask of the engine (the web layer sits below it)."""

    def health(self) -> dict[str, Any]: ...

    def readiness(self) -> tuple[bool, list[str]]: ...

    def status(self) -> dict[str, Any]: ...

    def refresh_gauges(self) -> None: ...


class FastPaths:
    """Ingest routes (a fixed path, POST) go straight to their handler.

    Starlette's middleware stack and route matching cost about a tenth of a small
    request; the ingest routes need neither (their handlers answer every error
    themselves). Everything else goes through the Starlette app. The security
    headers are added around both (`wireway.web.headers`, set up by
    `wireway.web.server`).
    """

    def __init__(self, app: Starlette, routes: list[BaseRoute]) -> None:
        self.app = app
        self.fast: dict[str, ASGIApp] = {}
        for route in routes:
            path = getattr(route, "path", "")
            methods = getattr(route, "methods", None) or set()
            if isinstance(route, Route) and "{" not in path and methods == {"POST"}:
                self.fast[path] = route.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.fast.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_app(engine: Observed, extra: list[BaseRoute]) -> Starlette:
    """The process's ASGI app."""

    async def health(request: Request) -> Response:
        body = engine.health()
        return JSONResponse(body, status_code=503 if body["status"] == "unhealthy" else 200)

    async def ready(request: Request) -> Response:
        # `down` also while ready: a component may be down without holding messages back
        ok, down = engine.readiness()
        body = {"ready": ok, "timestamp": now_rfc3339(), "down": down}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def status(request: Request) -> Response:
        return JSONResponse(engine.status())

    async def metrics(request: Request) -> Response:
        engine.refresh_gauges()
        return Response(render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    described: list[dict[str, Any]] = []  # built on first request: the routes are fixed by then

    async def openapi(request: Request) -> Response:
        if not described:
            described.append(openapi_document(routes, version=__version__, docs=ENGINE_ROUTES))
        return JSONResponse(described[0])

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "Not found", "path": request.url.path}, status_code=404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "Method not allowed"}, status_code=405)

    routes: list[BaseRoute] = [
        Route("/health", health),
        Route("/ready", ready),
        Route("/status", status),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        *extra,
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
