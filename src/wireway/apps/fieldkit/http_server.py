"""The operators' HTTP server: uvicorn on a port of its own, beside the engine's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from wireway.connectors.hostport import bind
from wireway.web.server import bounded_config


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the engine owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OperatorServer:
    """Serves `app` on host:port (a port in use is a `WirewayError` naming it)."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sock = bind(self.host, self.port)
        # the engine's bounds and security headers: requests in time and size, nosniff,
        # a page policy on the operator page
        config = bounded_config(self.app, interface="asgi3")
        self._server = _Uvicorn(config)
        self._task = asyncio.create_task(self._server.serve([sock]), name=f"wireway[fieldkit:{self.port}]")

    @property
    def started(self) -> bool:
        return self._server is not None and self._server.started

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
        self._server = self._task = None
