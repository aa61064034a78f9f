"""The websocket output and hub: a real server, real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import free_port
from support import base_url, engine_from, eventually
from wireway.config import load_pattern
from wireway.connectors.websocket import WebSocketHubs
from wireway.connectors.websocket.clients import SKIP, Scope, Subscription, match_filters
from wireway.connectors.websocket.hub import Hub
from wireway.observability.metrics import render
from wireway.runtime.engine import Engine

FULL = {
    "ld2410": {"presence": True, "distance": 150, "energy": 75},
    "pir": {"motion_detected": True},
    "mq134": {"gas_concentration": 250, "unit": "ppm"},
}


def pattern(path: str, options: str = "") -> str:
    return f"""
pattern: {{name: live, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - {{type: websocket, path: "{path}"{options}}}
settings: {{buffer: memory}}
"""


def reading(device: str, sensors: dict[str, Any] | None = None, n: int = 0) -> dict[str, Any]:
    return {
        "device_id": device,
        "timestamp": "2025-10-16T18:33:58Z",
        "n": n,
        "sensors": FULL if sensors is None else sensors,
    }


def ws_url(engine: Engine, path: str, query: str = "") -> str:
    host, port = engine.http
    return f"ws://{host}:{port}{path}{query}"


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next JSON message (bounded in time)."""
    raw = await asyncio.wait_for(ws.recv(), timeout)
    value = json.loads(raw)
    assert isinstance(value, dict)
    return value


async def recv_until(
    ws: ClientConnection, done: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Every message up to and including the first for which `done` is true."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            got.append(await recv(ws, timeout))
            if done(got[-1]):
                return got


async def post(engine: Engine, *values: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:
        r = await c.post("/ingest", json=list(values))
        assert r.status_code == 202, r.text


def hub_of(engine: Engine, path: str) -> Hub:
    """The engine's hub of `path` (each engine has its own)."""
    hubs = engine.service(WebSocketHubs)
    hub = hubs.get(path) if hubs is not None else None
    assert hub is not None, f"no websocket output on {path}"
    return hub


def is_rfc3339(text: str) -> bool:
    return text.endswith("Z") and datetime.fromisoformat(text.replace("Z", "+00:00")) is not None


def marker(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == "data" and m["data"].get("n") == n


async def test_connect_subscribe_and_device_filter(tmp_path: Path) -> None:
    """connected on connect, subscribed echoes filters, then only that device's readings."""
    path = "/ws-device"
    async with engine_from(tmp_path, pattern(path)) as engine:
        async with connect(ws_url(engine, path)) as ws, connect(ws_url(engine, path)) as other:
            hello = await recv(ws)
            assert hello["type"] == "connected"
            assert hello["message"] == "Connected to wireway live stream"
            assert is_rfc3339(hello["timestamp"])
            await recv(other)
            await ws.send(json.dumps({"type": "subscribe", "filters": {"device_id": "esp32-001"}}))
            sub = await recv(ws)
            assert sub["type"] == "subscribed"
            assert sub["filters"] == {"device_id": "esp32-001"}
            assert is_rfc3339(sub["timestamp"])
            await post(engine, reading("esp32-002", n=1), reading("esp32-001", n=2))
            await post(engine, reading("esp32-002", n=3), reading("esp32-001", n=4))
            got = await recv_until(ws, marker(4))
            assert [m["data"]["n"] for m in got] == [2, 4]
            assert all(m["data"]["device_id"] == "esp32-001" for m in got)
            first = got[0]
            assert first["type"] == "data"  # the message's messageType
            assert first["data"]["sensors"] == FULL
            assert is_rfc3339(first["timestamp"])
            # a client without a subscription receives every reading
            everything = await recv_until(other, marker(4))
            assert [m["data"]["n"] for m in everything] == [1, 2, 3, 4]
            # a list of devices
            await ws.send(json.dumps({"type": "subscribe", "filters": {"device_id": ["a", "esp32-002"]}}))
            assert (await recv(ws))["type"] == "subscribed"
            await post(engine, reading("esp32-001", n=5), reading("esp32-002", n=6))
            assert [m["data"]["n"] for m in await recv_until(ws, marker(6))] == [6]


async def test_unsubscribe_stops_the_stream_until_the_next_subscribe(tmp_path: Path) -> None:
    """After unsubscribe a client gets nothing but its own answers; subscribing again
    (no filters) brings every message back. A client that never subscribed gets all."""
    path = "/ws-unsubscribe"
    async with engine_from(tmp_path, pattern(path)) as engine:
        route = engine.runners[0].routes[0]
        async with connect(ws_url(engine, path)) as ws, connect(ws_url(engine, path)) as never:
            await recv(ws)
            await recv(never)
            await ws.send(json.dumps({"type": "unsubscribe"}))
            unsub = await recv(ws)
            assert unsub["type"] == "unsubscribed"
            assert is_rfc3339(unsub["timestamp"])
            await post(engine, reading("esp32-001", n=1), reading("esp32-002", n=2))
            await eventually(lambda: route.delivered == 2)  # published to the hub
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv(ws))["type"] == "pong"  # nothing was queued before it
            await ws.send(json.dumps({"type": "subscribe"}))
            assert (await recv(ws))["type"] == "subscribed"
            await post(engine, reading("esp32-001", n=3))
            assert [m["data"]["n"] for m in await recv_until(ws, marker(3))] == [3]
            assert [m["data"]["n"] for m in await recv_until(never, marker(3))] == [1, 2, 3]


async def test_an_installed_select_hook_decides_per_client(tmp_path: Path) -> None:
    """`install(select=...)` sees kind, data and the subscription (its extra keys in
    `options`, echoed in the reply); the hub's own filters apply without it."""
    path = "/ws-hook"
    seen: list[tuple[str, Subscription | None]] = []

    def even_only(kind: str, data: Any, subscription: Subscription | None) -> Any:
        seen.append((kind, subscription))
        if subscription is not None and subscription.options.get("even") is True:
            return data if data["n"] % 2 == 0 else SKIP
        return {**data, "seen_by_hook": True}

    async with engine_from(tmp_path, pattern(path)) as engine:
        hub_of(engine, path).install(select=even_only)
        async with connect(ws_url(engine, path)) as ws, connect(ws_url(engine, path)) as other:
            await recv(ws)
            await recv(other)
            await ws.send(json.dumps({"type": "subscribe", "filters": {"device_id": "x"}, "even": True}))
            reply = await recv(ws)
            assert reply["even"] is True
            assert reply["filters"] == {"device_id": "x"}
            await post(engine, reading("esp32-001", n=1), reading("esp32-001", n=2))
            assert [m["data"]["n"] for m in await recv_until(ws, marker(2))] == [2]
            got = await recv_until(other, marker(2))
            assert all(m["data"]["seen_by_hook"] for m in got)
            (sub,) = {id(s): s for _, s in seen if s is not None}.values()
            assert sub.filters == {"device_id": ["x"]}
            assert {kind for kind, _ in seen} == {"data"}


async def test_two_engines_in_one_process_have_hubs_of_their_own(tmp_path: Path) -> None:
    """Two engines with an output on the same path: each has its own hub, its own
    clients and hooks; a message of one engine reaches none of the other's clients."""
    path = "/ws-two-engines"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        engine_from(tmp_path / "a", pattern(path)) as first,
        engine_from(tmp_path / "b", pattern(path)) as second,
    ):
        assert hub_of(first, path) is not hub_of(second, path)
        hub_of(first, path).install(select=lambda kind, data, subscription: {**data, "first": True})
        assert hub_of(second, path).select is match_filters
        async with connect(ws_url(first, path)) as ws_first, connect(ws_url(second, path)) as ws_second:
            await recv(ws_first)
            await recv(ws_second)
            await eventually(lambda: hub_of(first, path).clients == hub_of(second, path).clients == 1)
            await post(first, reading("esp32-001", n=1))
            (got,) = await recv_until(ws_first, marker(1))
            assert got["data"]["first"] is True
            # published to the first hub's clients by now: a shared hub would have
            # queued it to the second engine's client before this one
            await post(second, reading("esp32-001", n=2))
            assert [m["data"]["n"] for m in await recv_until(ws_second, marker(2))] == [2]


async def test_ping_unknown_type_and_bad_json(tmp_path: Path) -> None:
    """ping -> pong; unknown type and invalid JSON get the protocol's error messages."""
    path = "/ws-errors"
    async with engine_from(tmp_path, pattern(path)) as engine:
        async with connect(ws_url(engine, path)) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "ping"}))
            pong = await recv(ws)
            assert pong["type"] == "pong"
            assert is_rfc3339(pong["timestamp"])
            await ws.send(json.dumps({"type": "dance"}))
            assert await recv(ws) == {"type": "error", "message": "Unknown message type"}
            await ws.send("{not json")
            assert await recv(ws) == {"type": "error", "message": "Invalid message format"}
            await ws.send(json.dumps({"type": "subscribe", "filters": "esp32-001"}))
            assert await recv(ws) == {"type": "error", "message": "Invalid message format"}
            # the connection is still usable
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv(ws))["type"] == "pong"


async def test_authentication_hook(tmp_path: Path) -> None:
    """Header, query and first-message credentials; anything else gets 4401."""
    path = "/ws-auth"
    seen: list[tuple[dict[str, str], dict[str, str], dict[str, Any] | None]] = []

    async def authenticate(
        headers: dict[str, str], query: dict[str, str], first: dict[str, Any] | None
    ) -> str | None:
        seen.append((headers, query, first))
        key = headers.get("x-api-key") or query.get("api_key") or query.get("token")
        if first is not None:
            key = first.get("api_key")
        return None if key == "good" else "invalid key"

    async with engine_from(tmp_path, pattern(path)) as engine:
        hub = hub_of(engine, path)
        hub.authenticate = authenticate
        async with connect(ws_url(engine, path), additional_headers={"X-API-Key": "good"}) as ws:
            assert (await recv(ws))["type"] == "connected"
        async with connect(ws_url(engine, path, "?api_key=good")) as ws:
            assert (await recv(ws))["type"] == "connected"
        async with connect(ws_url(engine, path, "?token=good")) as ws:
            assert (await recv(ws))["type"] == "connected"
        async with connect(ws_url(engine, path)) as ws:
            assert (await recv(ws))["type"] == "connected"
            await ws.send(json.dumps({"type": "auth", "api_key": "good"}))
            authed = await recv(ws)
            assert authed["type"] == "authenticated"
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv(ws))["type"] == "pong"
            await post(engine, reading("esp32-001", n=1))
            assert (await recv(ws))["data"]["n"] == 1
        assert seen[-1][2] == {"type": "auth", "api_key": "good"}

        for url, headers, first in [
            (ws_url(engine, path), {"X-API-Key": "bad"}, None),
            (ws_url(engine, path, "?api_key=bad"), {}, None),
            (ws_url(engine, path), {}, {"type": "auth", "api_key": "bad"}),
            (ws_url(engine, path), {}, {"type": "subscribe"}),
        ]:
            async with connect(url, additional_headers=headers) as ws:
                if first is not None:
                    assert (await recv(ws))["type"] == "connected"
                    await ws.send(json.dumps(first))
                assert await recv(ws) == {"type": "error", "message": "Unauthorized"}
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 4401, (url, headers, first)
        # refused clients never received a reading
        await eventually(lambda: hub.clients == 0)
        assert hub.publish("sensor-data", reading("esp32-001")) == 0


def test_a_scope_copies_its_fields_and_needs_every_one() -> None:
    """A scope keeps its own copy (the hook's dict changed later does not widen it); a
    message passes when its kind is allowed and every field has the scope's value."""
    fields: dict[str, Any] = {"device_id": "esp32-001"}
    scope = Scope(fields, {"data"})
    fields["device_id"] = "esp32-002"
    assert scope.allows("data", {"device_id": "esp32-001", "n": 1})
    assert not scope.allows("data", {"device_id": "esp32-002"})
    assert not scope.allows("alert", {"device_id": "esp32-001"})
    assert not scope.allows("data", {"n": 1})  # no device_id: not its own
    assert not scope.allows("data", ["esp32-001"])
    assert Scope({"device_id": "esp32-001"}).allows("anything", {"device_id": "esp32-001"})
    with pytest.raises(TypeError):
        scope.fields["device_id"] = "esp32-002"  # type: ignore[index]


async def test_a_scope_from_the_hook_limits_a_client_whatever_it_subscribes(tmp_path: Path) -> None:
    """`authenticate` may answer a `Scope` (or a mapping: its fields): the client is let
    in, and the hub applies the scope before `select`, so its subscription only narrows
    it. Unscoped clients get everything; an answer that is neither None, a reason nor a
    scope refuses the client."""
    path = "/ws-scope"
    verdicts: dict[str, Any] = {
        "admin": None,
        "one": Scope({"device_id": "esp32-001"}, {"data", "alert"}),
        "two": {"device_id": "esp32-002"},
        "odd": 42,
    }

    async def authenticate(
        headers: dict[str, str], query: dict[str, str], first: dict[str, Any] | None
    ) -> Any:
        key = query.get("api_key", "")
        return verdicts.get(key, "invalid key")

    async with engine_from(tmp_path, pattern(path)) as engine:
        route = engine.runners[0].routes[0]
        hub = hub_of(engine, path)
        hub.install(authenticate=authenticate)
        async with connect(ws_url(engine, path, "?api_key=odd")) as ws:
            assert await recv(ws) == {"type": "error", "message": "Unauthorized"}
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 4401
        async with (
            connect(ws_url(engine, path, "?api_key=admin")) as admin,
            connect(ws_url(engine, path, "?api_key=one")) as one,
            connect(ws_url(engine, path, "?api_key=two")) as two,
        ):
            for ws in (admin, one, two):
                assert (await recv(ws))["type"] == "connected"
            await eventually(lambda: hub.clients == 3)
            assert sorted(str(s["scope"]) for s in hub.stats()) == sorted(
                [
                    "None",
                    str({"fields": {"device_id": "esp32-001"}, "kinds": ["alert", "data"]}),
                    str({"fields": {"device_id": "esp32-002"}, "kinds": None}),
                ]
            )
            # asking for both devices does not widen the scope
            await one.send(
                json.dumps({"type": "subscribe", "filters": {"device_id": ["esp32-001", "esp32-002"]}})
            )
            assert (await recv(one))["type"] == "subscribed"
            await post(engine, reading("esp32-002", n=1), reading("esp32-001", n=2))
            await eventually(lambda: route.delivered == 2)
            assert hub.publish("alert", {"device_id": "esp32-002", "id": "A2"}) == 2  # admin, two
            assert hub.publish("alert", {"device_id": "esp32-001", "id": "A1"}) == 2  # admin, one
            assert hub.publish("occupancy", {"device_id": "esp32-001"}) == 1  # not one's kinds
            assert hub.publish("occupancy", {"device_id": "esp32-002"}) == 2  # two: any kind
            assert hub.publish("status", {"up": True}) == 1  # no device_id: the admin's only
            assert hub.publish("note", ["not", "an", "object"]) == 1  # no fields to match
            await post(engine, reading("esp32-001", n=3), reading("esp32-002", n=4))
            got = await recv_until(one, marker(3))
            assert [(m["type"], m["data"].get("n", m["data"].get("id"))) for m in got] == [
                ("data", 2),
                ("alert", "A1"),
                ("data", 3),
            ]
            got = await recv_until(two, marker(4))
            assert [(m["type"], m["data"].get("n", m["data"].get("id"))) for m in got] == [
                ("data", 1),
                ("alert", "A2"),
                ("occupancy", None),
                ("data", 4),
            ]
            got = await recv_until(admin, marker(4))
            assert [m["type"] for m in got] == [
                *("data", "data", "alert", "alert", "occupancy", "occupancy"),
                *("status", "note", "data", "data"),
            ]
            # narrowed to the other device: nothing of either arrives before the pong
            await one.send(json.dumps({"type": "subscribe", "filters": {"device_id": "esp32-002"}}))
            assert (await recv(one))["type"] == "subscribed"
            await post(engine, reading("esp32-002", n=5), reading("esp32-001", n=6))
            await eventually(lambda: route.delivered == 6)
            await one.send(json.dumps({"type": "ping"}))
            assert (await recv(one))["type"] == "pong"
        await eventually(lambda: hub.clients == 0)
        assert hub.stats() == []


async def test_slow_client_drops_oldest_and_ingestion_never_waits(tmp_path: Path) -> None:
    """A client that never reads loses its oldest messages; a reading client keeps up."""
    path = "/ws-slow"
    async with engine_from(tmp_path, pattern(path, ", queue_size: 200")) as engine:
        hub = hub_of(engine, path)
        async with (
            connect(ws_url(engine, path), max_queue=4, compression=None, close_timeout=0.5) as slow,
            connect(ws_url(engine, path), compression=None) as fast,
        ):
            await recv(slow)  # then it never reads again
            await recv(fast)
            await eventually(lambda: hub.clients == 2)
            received: list[int] = []

            async def read_fast() -> None:
                while True:
                    m = await recv(fast, 10)
                    received.append(m["data"]["n"])
                    if m["data"]["n"] == 4999:
                        return

            reader = asyncio.create_task(read_fast())
            blob = secrets.token_hex(4000)  # 8 kB each: the slow client's buffers fill up
            loop = asyncio.get_running_loop()
            for start in range(0, 5000, 50):
                t0 = loop.time()
                for n in range(start, start + 50):
                    hub.publish("sensor-data", {"device_id": "esp32-001", "n": n, "blob": blob})
                assert loop.time() - t0 < 0.5  # publishing never waits for a client
                await asyncio.sleep(0.002)
            await asyncio.wait_for(reader, 30)
            stats = {s["peer"]: s for s in hub.stats()}
            assert len(stats) == 2
            slow_stats = max(stats.values(), key=lambda s: s["dropped"])
            fast_stats = min(stats.values(), key=lambda s: s["dropped"])
            assert slow_stats["dropped"] > 1000
            assert slow_stats["queued"] <= 200
            assert fast_stats["dropped"] < slow_stats["dropped"]
            assert hub.dropped >= slow_stats["dropped"] + fast_stats["dropped"]
            assert received[-1] == 4999  # the fast client got the latest
            assert len(received) > slow_stats["sent"]
            assert received == sorted(received)


@pytest.mark.parametrize("key", ["port", "websocket_port"])
async def test_extra_port_accepts_any_path(tmp_path: Path, key: str) -> None:
    """With `port` (or `websocket_port`, the existing service's name), a second server
    takes WebSocket clients on any path; HTTP gets 426."""
    path = "/ws-extra"
    port = free_port()
    async with engine_from(tmp_path, pattern(path, f", {key}: {port}")) as engine:
        async with (
            connect(f"ws://127.0.0.1:{port}/") as root,
            connect(f"ws://127.0.0.1:{port}/any/path?x=1") as deep,
        ):
            assert (await recv(root))["type"] == "connected"
            assert (await recv(deep))["type"] == "connected"
            await deep.send(json.dumps({"type": "subscribe", "filters": {"device_id": "b"}}))
            await recv(deep)
            await post(engine, reading("a", n=1), reading("b", n=2))
            assert [m["data"]["n"] for m in await recv_until(root, marker(2))] == [1, 2]
            assert [m["data"]["n"] for m in await recv_until(deep, marker(2))] == [2]
            async with httpx.AsyncClient(trust_env=False) as c:
                r = await c.get(f"http://127.0.0.1:{port}/status")
            assert r.status_code == 426
    # stopped with the engine
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_unresponsive_client_is_dropped_by_protocol_ping(tmp_path: Path) -> None:
    """Ping frames every ping_interval: a peer that never answers is closed, others stay."""
    path = "/ws-keepalive"
    options = ", ping_interval: 0.2, ping_timeout: 0.3"
    async with engine_from(tmp_path, pattern(path, options)) as engine:
        hub = hub_of(engine, path)
        host, port = engine.http
        async with connect(ws_url(engine, path), ping_interval=None) as alive:
            await recv(alive)
            # a raw peer: completes the handshake, then never reads or answers
            raw = socket.create_connection((host, port))
            raw.sendall(
                (
                    f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            try:
                await eventually(lambda: hub.clients == 2, timeout=5)
                await eventually(lambda: hub.clients == 1, timeout=5)
            finally:
                raw.close()
            await asyncio.sleep(1.0)  # five more intervals: the answering client stays
            await alive.send(json.dumps({"type": "ping"}))
            assert (await recv(alive))["type"] == "pong"
            assert hub.clients == 1


async def test_envelope_mode_custom_kind_and_connection_gauge(tmp_path: Path) -> None:
    """payload_only: false pushes the envelope under `kind`; the gauge counts clients."""
    path = "/ws-envelope"
    options = ", kind: order-event, payload_only: false"
    async with engine_from(tmp_path, pattern(path, options)) as engine:
        async with connect(ws_url(engine, path)) as ws:
            await recv(ws)
            assert 'active_connections{connection_type="websocket",kind="websocket"} 1.0' in (
                render().decode()
            )
            await post(engine, {"id": 7})
            got = await recv(ws)
            assert got["type"] == "order-event"
            assert got["data"]["payload"] == {"id": 7}
            assert got["data"]["source"] == "live.http"
            assert "messageId" in got["data"]
        await eventually(lambda: hub_of(engine, path).clients == 0)
        await eventually(
            lambda: (
                'active_connections{connection_type="websocket",kind="websocket"} 0.0' in render().decode()
            )
        )
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:
            assert (await c.get("/health")).json()["status"] == "healthy"


def test_two_extra_ports_for_one_hub_are_refused() -> None:
    """One hub serves at most one extra port."""
    hub = Hub("/ws-conflict")
    hub.configure(port=3001)
    hub.configure(port=3001)
    with pytest.raises(Exception, match="already has the extra port"):
        hub.configure(port=3002)


async def test_no_clients_no_queueing(tmp_path: Path) -> None:
    """With nobody connected a reading is counted as delivered without being queued;
    a client that connects gets the readings from then on."""
    path = "/ws-idle"
    async with engine_from(tmp_path, pattern(path)) as engine:
        route = engine.runners[0].routes[0]
        await post(engine, reading("esp32-001", n=1), reading("esp32-001", n=2))
        assert route.delivered == 2
        assert route.queue.depth == 0
        async with connect(ws_url(engine, path)) as ws:
            await recv(ws)  # connected
            await post(engine, reading("esp32-001", n=3))
            got = await recv_until(ws, marker(3))
            assert [m["data"]["n"] for m in got] == [3]
        assert route.delivered == 3


# ----- the extra port's interface follows the HTTP server's -----------------------------


@contextlib.asynccontextmanager
async def engine_on(tmp: Path, text: str, host: str) -> AsyncIterator[Engine]:
    """An engine whose HTTP server listens on `host` (engine_from uses 127.0.0.1)."""
    (tmp / "pattern.yaml").write_text(text)
    loaded, errors = load_pattern(tmp / "pattern.yaml")
    assert loaded is not None, [str(e) for e in errors]
    engine = Engine([loaded], data_dir=tmp / "data", http=(host, free_port()))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.shutdown()


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def extra_port_addresses(hub: Hub) -> set[tuple[str, int]]:
    """Where the extra port's server listens (once it has started)."""
    await eventually(lambda: hub._server is not None and hub._server.started)
    assert hub._server is not None
    return hub._server.addresses()


async def test_extra_port_listens_on_the_http_host(tmp_path: Path) -> None:
    """Without `host`, the extra port binds where --http does (here 127.0.0.2, another
    loopback address): reachable there, refused on 127.0.0.1."""
    path = "/ws-extra-host"
    port = free_port()
    async with engine_on(tmp_path, pattern(path, f", port: {port}"), "127.0.0.2") as engine:
        assert await extra_port_addresses(hub_of(engine, path)) == {("127.0.0.2", port)}
        async with connect(f"ws://127.0.0.2:{port}/any") as ws:
            assert (await recv(ws))["type"] == "connected"
        assert refused("127.0.0.1", port)


async def test_extra_port_listens_on_all_interfaces_with_the_http_server(tmp_path: Path) -> None:
    """--http 0.0.0.0:PORT (the Dockerfile's): the extra port (EXPOSE 3001) too."""
    path = "/ws-extra-any"
    port = free_port()
    async with engine_on(tmp_path, pattern(path, f", port: {port}"), "0.0.0.0") as engine:
        assert await extra_port_addresses(hub_of(engine, path)) == {("0.0.0.0", port)}
        assert engine.http[0] == "0.0.0.0"
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            assert (await recv(ws))["type"] == "connected"


async def test_explicit_extra_port_host_wins(tmp_path: Path) -> None:
    """`host:` names the extra port's interface whatever --http says."""
    path = "/ws-extra-explicit"
    port = free_port()
    options = f", port: {port}, host: 127.0.0.1"
    async with engine_on(tmp_path, pattern(path, options), "127.0.0.2") as engine:
        assert await extra_port_addresses(hub_of(engine, path)) == {("127.0.0.1", port)}
        assert refused("127.0.0.2", port)


def test_extra_port_host_left_to_the_http_server_agrees_with_any() -> None:
    """Two outputs on one hub and port: a named host and an unnamed one agree; two
    different named hosts do not."""
    hub = Hub("/ws-conflict-host")
    hub.configure(port=3001)
    hub.configure(port=3001, host="0.0.0.0")
    hub.configure(port=3001)
    assert hub.host == "0.0.0.0"
    with pytest.raises(Exception, match="already has the extra port"):
        hub.configure(port=3001, host="127.0.0.1")


def test_port_and_websocket_port_together_are_refused() -> None:
    from wireway.connectors.websocket.config import WebSocketOutputConfig

    with pytest.raises(msgspec.ValidationError, match=r"not both - at `\$.websocket_port`"):
        msgspec.convert({"port": 3001, "websocket_port": 3002}, WebSocketOutputConfig)
    assert msgspec.convert({"websocket_port": 3001}, WebSocketOutputConfig).port == 3001
