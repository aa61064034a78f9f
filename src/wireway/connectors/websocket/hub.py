"""The live WebSocket hub: one per path per engine, shared by outputs and applications.

The protocol is the one the existing clients speak (see the `websocket` output's
reference page). Design points:

- `publish(kind, data)` only appends to each client's queue and returns: it never
  awaits a client, so ingestion never waits for a slow one. One writer task per
  client drains its queue; when a queue is full its oldest message is dropped for
  that client alone and counted (`client.dropped`, `hub.dropped`).
- What each client gets of a message is the `select` hook's answer (see
  `clients.py`): by default every message, or with a subscription's `filters` the
  messages whose fields match them. An application installs its own hook with
  `install` to add the rules of its domain. A client that never subscribed gets
  every message the hook lets through; after `{"type": "unsubscribe"}` it gets none
  until it subscribes again.
- Keepalive uses protocol-level ping/pong frames sent by uvicorn's WebSocket
  protocol (the ASGI interface has no ping): the extra-port server is configured
  with the hub's interval and timeout, and on the main HTTP port the hub sets them
  on each connection's uvicorn protocol before accepting it. A client that does not
  answer a ping in time is closed by uvicorn (code 1011) and leaves the hub.
- With an `authenticate` hook installed, a client is let in only once it passes
  (`admission.py`). The hook may let it in with a `Scope` (say, one device's
  messages): the hub applies it before `select`, so nothing the client subscribes
  to can widen it. While no client has a scope, `publish` does no scope work.

The second server (`port`) is in `server.py`, the client state in `clients.py`, the
engine's set of hubs (one per path) in `hubs.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from wireway.connectors.websocket.admission import Authenticate, admit, encode_text, parse
from wireway.connectors.websocket.clients import (
    SKIP,
    Client,
    Select,
    Subscription,
    match_filters,
    normalize_filters,
)
from wireway.connectors.websocket.server import SecondServer
from wireway.envelope import now_rfc3339
from wireway.errors import WirewayError
from wireway.observability import logging as log
from wireway.observability.metrics import connection_closed, connection_opened

logger = log.get("websocket")


class _Endpoint:
    """The hub as an ASGI app for `WebSocketRoute` (a class, so it gets `receive`)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.hub.asgi(scope, receive, send)


class Hub:
    """Live fan-out of messages to the WebSocket clients of one path.

    Args:
        path: the route on the engine's HTTP server.
        http_host: the interface of the engine's HTTP server.

    Settings (set by `configure`): `port` / `host` of an optional second server
    that accepts WebSocket clients on any path (`host` None: `http_host`),
    `queue_size` per client, `ping_interval` and `ping_timeout` in seconds,
    `auth_timeout` (how long a client may take to send its `auth` message).
    `select` and `authenticate` are the hooks an application sets with `install`.
    """

    def __init__(self, path: str = "/ws", http_host: str = "127.0.0.1") -> None:
        if not path.startswith("/"):
            raise ValueError(f"a WebSocket path starts with '/': {path!r}")
        self.path = path
        self.http_host = http_host
        self.dropped = 0
        self._clients: dict[int, Client] = {}
        self._scoped = 0  # clients with a scope: publish checks scopes only when some are
        self._ids = itertools.count(1)
        self._server: SecondServer | None = None
        self.port: int | None = None
        self.host: str | None = None  # None: the same interface as the HTTP server
        self.queue_size = 1000
        self.ping_interval = 30.0
        self.ping_timeout: float | None = None
        self.auth_timeout = 10.0
        self.select: Select = match_filters
        self.authenticate: Authenticate | None = None

    def install(self, *, select: Select | None = None, authenticate: Authenticate | None = None) -> None:
        """Set an application's hooks.

        Args:
            select: what a client gets of each message (see `clients.py`); None: the
                hub's own `match_filters`.
            authenticate: None lets every client in; otherwise it is asked for each
                client: a reason it returns refuses that client, a `Scope` limits
                what that client receives (see `admission.py`).
        """
        self.select = select or match_filters
        self.authenticate = authenticate

    def configure(
        self,
        *,
        port: int | None = None,
        host: str | None = None,
        queue_size: int | None = None,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
    ) -> None:
        """Apply an output's settings; two different extra ports for one hub are refused
        (a `host` of None, the HTTP server's, agrees with any other)."""
        if port is not None:
            if self.port is not None and (
                self.port != port or (None not in (self.host, host) and self.host != host)
            ):
                raise WirewayError(
                    f"websocket {self.path} already has the extra port "
                    f"{self.host or '(HTTP host)'}:{self.port}; cannot also use "
                    f"{host or '(HTTP host)'}:{port}"
                )
            self.port = port
            if host is not None:
                self.host = host
        if queue_size is not None:
            self.queue_size = queue_size
        if ping_interval is not None:
            self.ping_interval = ping_interval
        if ping_timeout is not None:
            self.ping_timeout = ping_timeout

    # ----- lifecycle --------------------------------------------------------------
    @property
    def clients(self) -> int:
        """Clients connected (and authenticated) right now."""
        return len(self._clients)

    def stats(self) -> list[dict[str, Any]]:
        """Per client: id, peer, queued, sent, dropped, streaming, scope, filters, options."""
        return [c.stats() for c in self._clients.values()]

    def routes(self) -> list[BaseRoute]:
        return [WebSocketRoute(self.path, _Endpoint(self), name=f"websocket:{self.path}")]

    async def start(self) -> None:
        if self.port is not None and self._server is None:
            await self.serve_extra_port(self.host or self.http_host, self.port)

    async def stop(self) -> None:
        """Stop the extra-port server and close the clients that are left."""
        if self._server is not None:
            await self._server.stop()
        self._server = None
        for client in list(self._clients.values()):
            with contextlib.suppress(Exception):
                await client.websocket.close(1001)

    async def serve_extra_port(self, host: str, port: int) -> None:
        """Start a second server that accepts WebSocket clients on any path."""
        self._server = SecondServer(
            self.asgi,
            host=host,
            port=port,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout or self.ping_interval,
        )
        await self._server.start()

    # ----- publishing ---------------------------------------------------------------
    def publish(self, kind: str, data: Any) -> int:
        """Queue `{"type": kind, "data": ..., "timestamp": ...}` for every matching client.

        Never waits: returns the number of clients it was queued for. Call it from
        the event loop's thread.
        """
        if not self._clients:
            return 0
        select = self.select
        scoped = self._scoped > 0
        timestamp = now_rfc3339()
        shared: str | None = None
        count = 0
        for client in self._clients.values():
            if not client.streaming:
                continue
            if scoped and client.scope is not None and not client.scope.allows(kind, data):
                continue
            view = select(kind, data, client.subscription)
            if view is SKIP:
                continue
            if view is data:
                if shared is None:
                    shared = encode_text({"type": kind, "data": data, "timestamp": timestamp})
                text = shared
            else:
                text = encode_text({"type": kind, "data": view, "timestamp": timestamp})
            if client.push(text):
                self.dropped += 1
            count += 1
        return count

    # ----- one connection -----------------------------------------------------------
    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: WebSocket sessions; plain HTTP (extra port) gets 426."""
        if scope["type"] == "http":
            body = encode_text({"error": "WebSocket only", "path": scope.get("path", "")}).encode()
            headers = [(b"content-type", b"application/json"), (b"upgrade", b"websocket")]
            await send({"type": "http.response.start", "status": 426, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "websocket":
            return
        self._tune_keepalive(receive)
        await self._session(WebSocket(scope, receive, send))

    def _tune_keepalive(self, receive: Receive) -> None:
        """Set this connection's ping interval/timeout on uvicorn's protocol object.

        uvicorn reads them when the handshake completes (at `accept`); without its
        protocol object (another server) the server's own keepalive applies.
        """
        protocol = getattr(receive, "__self__", None)
        if protocol is None or not hasattr(protocol, "start_keepalive"):
            return
        if hasattr(protocol, "ping_interval") and hasattr(protocol, "ping_timeout"):
            protocol.ping_interval = self.ping_interval
            protocol.ping_timeout = self.ping_timeout or self.ping_interval

    async def _session(self, ws: WebSocket) -> None:
        try:
            await ws.accept()
        except Exception:  # noqa: BLE001  (the client left during the handshake)
            return
        connection_opened("websocket")
        peer = f"{ws.client.host}:{ws.client.port}" if ws.client else "?"
        client = Client(next(self._ids), ws, peer, self.queue_size)
        writer: asyncio.Task[None] | None = None
        try:
            if not await admit(client, self.authenticate, self.auth_timeout):
                return
            self._clients[client.id] = client
            if client.scope is not None:
                self._scoped += 1
            writer = asyncio.create_task(
                self._writer(client), name=f"wireway[websocket:{self.path}].send#{client.id}"
            )
            await self._reader(client)
        except Exception as exc:  # noqa: BLE001  (one client's failure must not spread)
            logger.debug("websocket client failed", peer=peer, error=str(exc))
        finally:
            if self._clients.pop(client.id, None) is not None and client.scope is not None:
                self._scoped -= 1
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
            connection_closed("websocket")

    async def _reader(self, client: Client) -> None:
        ws = client.websocket
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            reply = self.handle(client, parse(message))
            if client.push(encode_text(reply)):
                self.dropped += 1

    def handle(self, client: Client, message: Any) -> dict[str, Any]:
        """The answer to one client message (already parsed; None when it was not JSON)."""
        if not isinstance(message, dict):
            return {"type": "error", "message": "Invalid message format"}
        kind = message.get("type")
        now = now_rfc3339()
        if kind == "subscribe":
            filters = message.get("filters")
            if filters is None:
                filters = {}
            if not isinstance(filters, dict):
                return {"type": "error", "message": "Invalid message format"}
            options = {k: v for k, v in message.items() if k not in ("type", "filters", "timestamp")}
            client.subscription = Subscription(normalize_filters(filters), options)
            client.streaming = True
            return {"type": "subscribed", "filters": filters, **options, "timestamp": now}
        if kind == "unsubscribe":  # no stream until the next subscribe
            client.subscription = None
            client.streaming = False
            return {"type": "unsubscribed", "timestamp": now}
        if kind == "ping":
            return {"type": "pong", "timestamp": now}
        if kind == "auth":  # already admitted (or no authentication configured)
            return {"type": "authenticated", "timestamp": now}
        return {"type": "error", "message": "Unknown message type"}

    async def _writer(self, client: Client) -> None:
        ws, queue = client.websocket, client.queue
        while True:
            if not queue:
                client.wakeup.clear()
                await client.wakeup.wait()
                continue
            await ws.send_text(queue.popleft())
            client.sent += 1
