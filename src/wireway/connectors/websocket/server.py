"""The hub's optional second server: WebSocket clients on another port, any path.

Existing clients connect to a port of their own (3001 for the sensor service's);
this is a second uvicorn server on that port that hands every connection to the
hub. Keepalive uses uvicorn's protocol-level ping/pong with the hub's settings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from wireway.connectors.hostport import bind
from wireway.observability import logging as log

logger = log.get("websocket")


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the engine owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SecondServer:
    """A uvicorn server for one ASGI app on its own listening socket.

    Args:
        app: the ASGI app every connection goes to (the hub's).
        host: interface to listen on.
        port: port to listen on; a port in use is a `WirewayError` naming it.
        ping_interval: seconds between protocol pings.
        ping_timeout: seconds to wait for a pong.
    """

    def __init__(
        self, app: ASGIApp, *, host: str, port: int, ping_interval: float, ping_timeout: float
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        sock = bind(self.host, self.port)
        config = uvicorn.Config(
            self.app,
            interface="asgi3",
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="none",
            timeout_graceful_shutdown=5,
            ws_ping_interval=self.ping_interval,
            ws_ping_timeout=self.ping_timeout,
        )
        self._server = _Uvicorn(config)
        self._task = asyncio.create_task(
            self._server.serve([sock]), name=f"wireway[websocket:{self.port}].serve"
        )
        logger.info("websocket extra port", address=f"ws://{self.host}:{self.port}/", path="any")

    @property
    def started(self) -> bool:
        return self._server is not None and self._server.started

    def addresses(self) -> set[tuple[str, int]]:
        """Where it listens, once started."""
        servers = self._server.servers if self._server is not None else []
        return {sock.getsockname()[:2] for server in servers for sock in server.sockets}

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
        self._server = self._task = None
