"""The live WebSocket hub: one per path per process, shared by outputs and applications.

The protocol is the one the existing clients speak (see the `websocket` output's
reference page). Design points:

- `publish(kind, data)` only appends to each client's queue and returns: it never
  awaits a client, so ingestion never waits for a slow one. One writer task per
  client drains its queue; when a queue is full its oldest message is dropped for
  that client alone and counted (`client.dropped`, `hub.dropped`).
- A client with no subscription (or after `unsubscribe`) receives every message
  except `alert` and `occupancy`, which need `"alerts": true` / `"occupancy": true`
  in the subscribe message.
- Keepalive uses protocol-level ping/pong frames sent by uvicorn's WebSocket
  protocol (the ASGI interface has no ping): the extra-port server is configured
  with the hub's interval and timeout, and on the main HTTP port the hub sets them
  on each connection's uvicorn protocol before accepting it. A client that does not
  answer a ping in time is closed by uvicorn (code 1011) and leaves the hub.
- With `authenticate` set, a client authenticates with the `X-API-Key` header, the
  `api_key` / `token` query parameter, or a first message
  `{"type": "auth", "api_key": ...}`; otherwise it gets
  `{"type": "error", "message": "Unauthorized"}` and close code 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import msgspec
import uvicorn
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from wireway.connectors.base import Service
from wireway.envelope import now_rfc3339
from wireway.errors import WirewayError
from wireway.observability import logging as log
from wireway.observability.metrics import connection_closed, connection_opened

logger = log.get("websocket")

Authenticate = Callable[[dict[str, str], dict[str, str], dict[str, Any] | None], Awaitable[str | None]]
"""(headers, query, first message or None) -> None when allowed, else the reason."""

UNAUTHORIZED_CLOSE = 4401
OPT_IN = {"alert": "alerts", "occupancy": "occupancy"}  # kind -> subscribe flag it needs
CONNECTED_MESSAGE = "Connected to wireway live stream"
_SKIP = object()
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def _text(message: dict[str, Any]) -> str:
    return _encoder.encode(message).decode()


class Client:
    """One connected client: its subscription and its bounded send queue."""

    def __init__(self, cid: int, websocket: WebSocket, peer: str, limit: int) -> None:
        self.id = cid
        self.websocket = websocket
        self.peer = peer
        self.limit = limit
        self.queue: deque[str] = deque()
        self.wakeup = asyncio.Event()
        self.filters: dict[str, list[Any]] | None = None
        self.alerts = False
        self.occupancy = False
        self.dropped = 0
        self.sent = 0

    def push(self, text: str) -> bool:
        """Queue one message; True when the oldest one had to be dropped for it."""
        dropped = len(self.queue) >= self.limit
        if dropped:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(text)
        self.wakeup.set()
        return dropped

    def stats(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "peer": self.peer,
            "queued": len(self.queue),
            "sent": self.sent,
            "dropped": self.dropped,
            "filters": self.filters,
            "alerts": self.alerts,
            "occupancy": self.occupancy,
        }


def normalize_filters(filters: dict[str, Any]) -> dict[str, list[Any]]:
    """Each filter as a list of accepted values; empty ones (null, "", []) are ignored."""
    out: dict[str, list[Any]] = {}
    for key, value in filters.items():
        values = value if isinstance(value, list) else [value]
        values = [v for v in values if v is not None and v != ""]
        if values:
            out[str(key)] = values
    return out


def select(filters: dict[str, list[Any]] | None, data: Any, lenient: bool = False) -> Any:
    """What a client with `filters` gets of `data`: `data`, a trimmed copy, or `_SKIP`.

    `sensor_type` passes readings whose `sensors` object has one of the named
    sensors and trims `sensors` to those; any other key (and `sensor_type` on data
    without a `sensors` object) must equal one of the values. With `lenient` (alerts,
    occupancy) a filter on a key the data does not carry is ignored.
    """
    if not filters:
        return data
    if not isinstance(data, dict):
        return _SKIP
    view = data
    for key, allowed in filters.items():
        sensors = data.get("sensors") if key == "sensor_type" else None
        if isinstance(sensors, dict):
            kept = {name: value for name, value in sensors.items() if name in allowed}
            if not kept:
                return _SKIP
            if len(kept) != len(sensors):
                view = {**view, "sensors": kept}
            continue
        if key not in data:
            if lenient:
                continue
            return _SKIP
        if data[key] not in allowed:
            return _SKIP
    return view


class _Endpoint:
    """The hub as an ASGI app for `WebSocketRoute` (a class, so it gets `receive`)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.hub.asgi(scope, receive, send)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the engine owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Hub(Service):
    """Live fan-out of messages to the WebSocket clients of one path.

    Args:
        path: the route on the process's HTTP server.

    Settings (set by `configure`, reset by `stop`): `port` / `host` of an optional
    second server that accepts WebSocket clients on any path (`host` None: the
    engine's HTTP host, learnt in `attach`, else 127.0.0.1), `queue_size` per
    client, `ping_interval` and `ping_timeout` in seconds, `auth_timeout` (how long
    a client may take to send its `auth` message). `authenticate` is the optional
    authentication hook.
    """

    name = "websocket"

    def __init__(self, path: str = "/ws") -> None:
        if not path.startswith("/"):
            raise ValueError(f"a WebSocket path starts with '/': {path!r}")
        self.path = path
        self.dropped = 0
        self._clients: dict[int, Client] = {}
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.port: int | None = None
        self.host: str | None = None  # None: the same interface as the HTTP server
        self.http_host = "127.0.0.1"  # the engine's HTTP host (attach)
        self.queue_size = 1000
        self.ping_interval = 30.0
        self.ping_timeout: float | None = None
        self.auth_timeout = 10.0
        self.authenticate: Authenticate | None = None

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

    # ----- Service ----------------------------------------------------------------
    @property
    def clients(self) -> int:
        """Clients connected (and authenticated) right now."""
        return len(self._clients)

    def stats(self) -> list[dict[str, Any]]:
        """Per client: id, peer, queued, sent, dropped, filters, alerts, occupancy."""
        return [c.stats() for c in self._clients.values()]

    def routes(self) -> list[BaseRoute]:
        return [WebSocketRoute(self.path, _Endpoint(self), name=f"websocket:{self.path}")]

    def attach(self, engine: Any) -> None:
        """The extra port listens where the HTTP server does unless `host` says otherwise."""
        http = getattr(engine, "http", None)
        if http:
            self.http_host = str(http[0])

    async def start(self) -> None:
        if self.port is not None and self._server is None:
            await self.serve_extra_port(self.host or self.http_host, self.port)

    async def stop(self) -> None:
        """Stop the extra-port server, close what is left, forget the settings."""
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server_task, 10)
        self._server = self._server_task = None
        for client in list(self._clients.values()):
            with contextlib.suppress(Exception):
                await client.websocket.close(1001)
        self._reset()

    async def serve_extra_port(self, host: str, port: int) -> None:
        """Start a second uvicorn server that accepts WebSocket clients on any path."""
        from wireway.runtime.engine import bind  # the engine's bind: a clear error when taken

        sock = bind(host, port)
        config = uvicorn.Config(
            self.asgi,
            interface="asgi3",
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="none",
            timeout_graceful_shutdown=5,
            ws_ping_interval=self.ping_interval,
            ws_ping_timeout=self.ping_timeout or self.ping_interval,
        )
        self._server = _Server(config)
        self._server_task = asyncio.create_task(
            self._server.serve([sock]), name=f"wireway[websocket:{port}].serve"
        )
        logger.info("websocket extra port", address=f"ws://{host}:{port}/", path="any")

    # ----- publishing ---------------------------------------------------------------
    def publish(self, kind: str, data: Any) -> int:
        """Queue `{"type": kind, "data": ..., "timestamp": ...}` for every matching client.

        Never waits: returns the number of clients it was queued for. Call it from
        the event loop's thread.
        """
        if not self._clients:
            return 0
        flag = OPT_IN.get(kind)
        timestamp = now_rfc3339()
        shared: str | None = None
        count = 0
        for client in self._clients.values():
            if flag is not None and not getattr(client, flag):
                continue
            view = select(client.filters, data, lenient=flag is not None)
            if view is _SKIP:
                continue
            if view is data:
                if shared is None:
                    shared = _text({"type": kind, "data": data, "timestamp": timestamp})
                text = shared
            else:
                text = _text({"type": kind, "data": view, "timestamp": timestamp})
            if client.push(text):
                self.dropped += 1
            count += 1
        return count

    # ----- one connection -----------------------------------------------------------
    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: WebSocket sessions; plain HTTP (extra port) gets 426."""
        if scope["type"] == "http":
            body = _encoder.encode({"error": "WebSocket only", "path": scope.get("path", "")})
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
            if not await self._admit(client):
                return
            self._clients[client.id] = client
            writer = asyncio.create_task(
                self._writer(client), name=f"wireway[websocket:{self.path}].send#{client.id}"
            )
            await self._reader(client)
        except Exception as exc:  # noqa: BLE001  (one client's failure must not spread)
            logger.debug("websocket client failed", peer=peer, error=str(exc))
        finally:
            self._clients.pop(client.id, None)
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
            connection_closed("websocket")

    async def _admit(self, client: Client) -> bool:
        """Greet the client and, with `authenticate` set, authenticate it first."""
        ws = client.websocket
        connected = {"type": "connected", "message": CONNECTED_MESSAGE}
        check = self.authenticate
        if check is None:
            await ws.send_text(_text({**connected, "timestamp": now_rfc3339()}))
            return True
        headers = dict(ws.headers.items())
        query = dict(ws.query_params.items())
        reason = await self._check(check, headers, query, None)
        if reason is None:
            await ws.send_text(_text({**connected, "timestamp": now_rfc3339()}))
            return True
        offered = any(h in headers for h in ("x-api-key", "authorization")) or any(
            q in query for q in ("api_key", "token")
        )
        if offered:
            return await self._reject(client, reason)
        await ws.send_text(_text({**connected, "timestamp": now_rfc3339()}))
        try:
            message = await asyncio.wait_for(ws.receive(), self.auth_timeout)
        except TimeoutError:
            return await self._reject(client, "no auth message in time")
        if message["type"] == "websocket.disconnect":
            return False
        first = _parse(message)
        if not isinstance(first, dict) or first.get("type") != "auth":
            return await self._reject(client, "first message is not auth")
        reason = await self._check(check, headers, query, first)
        if reason is not None:
            return await self._reject(client, reason)
        await ws.send_text(_text({"type": "authenticated", "timestamp": now_rfc3339()}))
        return True

    @staticmethod
    async def _check(
        check: Authenticate,
        headers: dict[str, str],
        query: dict[str, str],
        first: dict[str, Any] | None,
    ) -> str | None:
        try:
            return await check(headers, query, first)
        except Exception as exc:  # noqa: BLE001  (a failing hook refuses, it does not crash)
            logger.warning("websocket authentication failed", error=str(exc))
            return f"authentication error: {exc}"

    async def _reject(self, client: Client, reason: str) -> bool:
        logger.info("websocket client refused", peer=client.peer, reason=reason)
        with contextlib.suppress(Exception):
            await client.websocket.send_text(_text({"type": "error", "message": "Unauthorized"}))
            await client.websocket.close(UNAUTHORIZED_CLOSE, "Unauthorized")
        return False

    async def _reader(self, client: Client) -> None:
        ws = client.websocket
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            reply = self.handle(client, _parse(message))
            if client.push(_text(reply)):
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
            client.filters = normalize_filters(filters)
            client.alerts = message.get("alerts") is True
            client.occupancy = message.get("occupancy") is True
            reply: dict[str, Any] = {"type": "subscribed", "filters": filters}
            for flag in ("alerts", "occupancy"):
                if flag in message:
                    reply[flag] = getattr(client, flag)
            return {**reply, "timestamp": now}
        if kind == "unsubscribe":
            client.filters, client.alerts, client.occupancy = None, False, False
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


def _parse(message: Mapping[str, Any]) -> Any:
    """A received ASGI message's JSON value, or None when it is not JSON."""
    data = message.get("text")
    if data is None:
        data = message.get("bytes")
    if data is None:
        return None
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError:
        return None


_HUBS: dict[str, Hub] = {}


def get_hub(path: str = "/ws") -> Hub:
    """The process's hub for `path` (created on first use)."""
    hub = _HUBS.get(path)
    if hub is None:
        hub = _HUBS[path] = Hub(path)
    return hub
