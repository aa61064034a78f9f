"""The sensor application's authentication, metrics and health contracts (issue 3, §2, §5, §8).

Test order matters within this file: the sensor application and its WebSocket hub are
process-wide singletons, and a hub's authentication is set by the first engine of the
process only (see test_websocket_auth_follows_each_engine_in_one_process), so the
WebSocket authentication test runs before the `authentication: none` one.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jwt
import pytest
from sensor_support import ADMIN, client, metric, reading, sensor_engine, sensor_service
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import ROOT
from wireway.runtime.engine import Engine

SECRET = "pattern-jwt-secret-0123456789abcdef0123"
AUTH_ERRORS = 'sensor_data_errors_total{error_type="auth_error"}'


def ws_url(engine: Engine, query: str = "") -> str:
    host, port = engine.http
    return f"ws://{host}:{port}/ws{query}"


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def subscribed(ws: ClientConnection) -> None:
    """The client may subscribe: its subscribe message is answered `subscribed`."""
    await ws.send(json.dumps({"type": "subscribe", "filters": {"device_id": "esp32-ws"}}))
    reply = await recv(ws)
    assert reply["type"] == "subscribed", reply
    assert reply["filters"] == {"device_id": "esp32-ws"}


async def refused(ws: ClientConnection) -> None:
    """The hub's refusal: an Unauthorized error, then close code 4401."""
    assert await recv(ws) == {"type": "error", "message": "Unauthorized"}
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 4401


async def test_websocket_authentication(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With authentication on, /ws admits the X-API-Key header, ?api_key=, ?token= (JWT) and a
    first {"type":"auth","api_key":...} message; no or wrong credentials get 4401."""
    monkeypatch.delenv("WIREWAY_AUTH", raising=False)
    env = {"WIREWAY_JWT_SECRET": SECRET}
    async with sensor_engine(tmp_path, env=env) as engine:
        async with connect(ws_url(engine), additional_headers={"X-API-Key": ADMIN}) as ws:
            hello = await recv(ws)
            assert hello["type"] == "connected"
            assert hello["message"]
            assert hello["timestamp"]
            await subscribed(ws)
        async with connect(ws_url(engine, f"?api_key={ADMIN}")) as ws:
            assert (await recv(ws))["type"] == "connected"
            await subscribed(ws)
        token = jwt.encode({"sub": "esp32-ws"}, SECRET, algorithm="HS256")
        async with connect(ws_url(engine, f"?token={token}")) as ws:
            assert (await recv(ws))["type"] == "connected"
            await subscribed(ws)
        async with connect(ws_url(engine)) as ws:
            assert (await recv(ws))["type"] == "connected"
            await ws.send(json.dumps({"type": "auth", "api_key": ADMIN}))
            assert (await recv(ws))["type"] == "authenticated"
            await subscribed(ws)
            async with client(engine) as c:  # an admitted client gets readings
                r = await c.post("/api/v1/sensor-data", json=reading("esp32-ws"))
                assert r.status_code == 202
            pushed = await recv(ws, 10)
            assert pushed["type"] == "sensor-data"
            assert pushed["data"]["device_id"] == "esp32-ws"

        # no credentials at all: greeted, then refused at its first (non-auth) message
        async with connect(ws_url(engine)) as ws:
            assert (await recv(ws))["type"] == "connected"
            await ws.send(json.dumps({"type": "subscribe", "filters": {}}))
            await refused(ws)
        # wrong credentials, each way
        forged = jwt.encode({"sub": "esp32-ws"}, "another-secret-0123456789abcdef0123", algorithm="HS256")
        for url, headers in [
            (ws_url(engine), {"X-API-Key": "wrong"}),
            (ws_url(engine, "?api_key=wrong"), {}),
            (ws_url(engine, f"?token={forged}"), {}),
        ]:
            async with connect(url, additional_headers=headers) as ws:
                await refused(ws)
        async with connect(ws_url(engine)) as ws:
            assert (await recv(ws))["type"] == "connected"
            await ws.send(json.dumps({"type": "auth", "api_key": "wrong"}))
            await refused(ws)


async def test_authentication_none_turns_it_off(tmp_path: Path) -> None:
    """`security: {authentication: none}` (WIREWAY_AUTH=none): no key needed anywhere."""
    async with sensor_engine(tmp_path, env={"WIREWAY_AUTH": "none"}) as engine, client(engine, None) as c:
        assert "x-api-key" not in c.headers
        r = await c.post("/api/v1/sensor-data", json=reading("esp32-open"))
        assert r.status_code == 202, r.text
        assert r.json()["message"] == "Sensor data accepted"
        batch = await c.post(
            "/api/v1/sensor-data/batch", json=[reading("esp32-open", "2025-10-16T18:40:00Z")]
        )
        assert batch.status_code == 202
        assert [x["status"] for x in batch.json()["results"]] == ["accepted"]
        meta = await c.post(
            "/api/v1/devices/metadata", json={"device_id": "esp32-open", "metadata": {"location": "lab"}}
        )
        assert meta.status_code == 200, meta.text
        for path in (
            "/api/v1/devices",
            "/api/v1/devices/esp32-open",
            "/api/v1/queue/status",
            "/api/v1/alerts",
            "/api/v1/readings",
        ):
            answer = await c.get(path)
            assert answer.status_code == 200, (path, answer.text)
        assert (await c.get("/api/v1/devices/esp32-open")).json()["metadata"] == {"location": "lab"}


def with_security(**keys: str) -> Any:
    """An `edit=` adding keys to the pattern's own `security:` section."""

    def edit(text: str) -> str:
        anchor = "  max_body_bytes: 1048576\n"
        assert anchor in text
        extra = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in keys.items())
        return text.replace(anchor, anchor + extra)

    return edit


async def test_hs256_jwt_from_the_pattern_security_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`security: {jwt_secret: ...}` in the pattern (no environment variable): a token whose
    `sub` is the device posts that device (202), not another (403); a bad signature is 401."""
    monkeypatch.delenv("WIREWAY_JWT_SECRET", raising=False)
    monkeypatch.delenv("WIREWAY_JWT_PUBLIC_KEY", raising=False)
    async with (
        sensor_engine(tmp_path, edit=with_security(jwt_secret=SECRET)) as engine,
        client(engine, None) as c,
    ):

        def bearer(claims: dict[str, Any], key: str = SECRET) -> None:
            c.headers["Authorization"] = "Bearer " + jwt.encode(claims, key, algorithm="HS256")

        bearer({"sub": "esp32-jwt"})
        own = await c.post("/api/v1/sensor-data", json=reading("esp32-jwt"))
        assert own.status_code == 202, own.text
        assert own.json()["device_id"] == "esp32-jwt"
        other = await c.post("/api/v1/sensor-data", json=reading("esp32-other"))
        assert other.status_code == 403, other.text
        bearer({"sub": "esp32-jwt"}, "not-the-pattern-secret-0123456789abcdef")
        forged = await c.post("/api/v1/sensor-data", json=reading("esp32-jwt", "2025-10-16T18:40:00Z"))
        assert forged.status_code == 401, forged.text
        bearer({"sub": "esp32-jwt", "exp": 1_000_000_000})  # expired in 2001
        expired = await c.post("/api/v1/sensor-data", json=reading("esp32-jwt", "2025-10-16T18:41:00Z"))
        assert expired.status_code == 401
        c.headers.pop("Authorization")
        assert (await c.post("/api/v1/sensor-data", json=reading("esp32-jwt"))).status_code == 401


async def test_rs256_jwt_from_the_pattern_security_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`security: {jwt_public_key: FILE}` in the pattern: RS256 tokens signed by its private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    monkeypatch.delenv("WIREWAY_JWT_SECRET", raising=False)
    monkeypatch.delenv("WIREWAY_JWT_PUBLIC_KEY", raising=False)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "device-jwt.pem"
    pem.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    async with (
        sensor_engine(tmp_path, edit=with_security(jwt_public_key=str(pem))) as engine,
        client(engine, None) as c,
    ):
        c.headers["Authorization"] = "Bearer " + jwt.encode({"sub": "esp32-rs"}, private, algorithm="RS256")
        assert (await c.post("/api/v1/sensor-data", json=reading("esp32-rs"))).status_code == 202
        assert (await c.post("/api/v1/sensor-data", json=reading("esp32-rx"))).status_code == 403
        hs = jwt.encode({"sub": "esp32-rs"}, SECRET, algorithm="HS256")  # not the configured algorithm
        c.headers["Authorization"] = f"Bearer {hs}"
        r = await c.post("/api/v1/sensor-data", json=reading("esp32-rs", "2025-10-16T18:40:00Z"))
        assert r.status_code == 401


async def test_device_credentials_cannot_administer_devices(tmp_path: Path) -> None:
    """A device key (and a device JWT) gets 403 on POST /api/v1/devices/metadata and
    DELETE /api/v1/devices/{id}; the admin key may do both."""
    async with sensor_engine(tmp_path, env={"WIREWAY_JWT_SECRET": SECRET}) as engine:
        app = sensor_service(engine)
        assert app.keys is not None
        _, device_key = await app.keys.create("esp32-dev")
        await app.keys.refresh()
        async with client(engine) as admin:
            r = await admin.post("/api/v1/devices/metadata", json={"device_id": "esp32-dev", "metadata": {}})
            assert r.status_code == 200
        token = jwt.encode({"sub": "esp32-dev"}, SECRET, algorithm="HS256")
        async with client(engine, device_key) as dev, client(engine, None) as dev_jwt:
            dev_jwt.headers["Authorization"] = f"Bearer {token}"
            for c in (dev, dev_jwt):
                assert (await c.post("/api/v1/sensor-data", json=reading("esp32-dev"))).status_code in (
                    202,
                    409,
                )
                meta = await c.post(
                    "/api/v1/devices/metadata",
                    json={"device_id": "esp32-dev", "metadata": {"secure_area": True}},
                )
                assert meta.status_code == 403, meta.text
                assert meta.json() == {"error": "Admin key required"}
                gone = await c.delete("/api/v1/devices/esp32-dev")
                assert gone.status_code == 403, gone.text
        async with client(engine) as admin:
            device = await admin.get("/api/v1/devices/esp32-dev")
            assert device.status_code == 200
            assert device.json()["metadata"] == {}
            assert (await admin.delete("/api/v1/devices/esp32-dev")).status_code == 200


async def test_auth_errors_are_counted(tmp_path: Path) -> None:
    """sensor_data_errors_total{error_type="auth_error"} counts refused credentials."""
    async with sensor_engine(tmp_path) as engine, client(engine) as admin:
        before = metric((await admin.get("/metrics")).text, AUTH_ERRORS)
        async with client(engine, "wrong-key") as bad:
            r = await bad.post("/api/v1/sensor-data", json=reading())
            assert r.status_code == 401
        after_one = metric((await admin.get("/metrics")).text, AUTH_ERRORS)
        assert after_one == before + 1
        async with client(engine, None) as anon:
            assert (await anon.post("/api/v1/sensor-data", json=reading())).status_code == 401
            assert (await anon.get("/api/v1/devices")).status_code == 401
        text = (await admin.get("/metrics")).text
        assert metric(text, AUTH_ERRORS) == after_one + 2
        # an accepted reading is no auth error
        assert (await admin.post("/api/v1/sensor-data", json=reading())).status_code == 202
        assert metric((await admin.get("/metrics")).text, AUTH_ERRORS) == after_one + 2


async def test_unhealthy_and_not_ready_while_the_buffer_cannot_be_written(tmp_path: Path) -> None:
    """While the durable buffer cannot be written (another process holds its write lock
    past the 5 s busy timeout), no reading is acknowledged, /health is 503 `unhealthy`
    and /ready is 503 `{"ready": false}`; both recover once it can be written again."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        assert (await c.post("/api/v1/sensor-data", json=reading())).status_code == 202
        assert (await c.get("/health")).json()["status"] == "healthy"
        assert engine.sqlite is not None
        blocker = sqlite3.connect(engine.sqlite.path, isolation_level=None, timeout=10)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # the writer's BEGIN IMMEDIATE now waits, then fails
            r = await c.post("/api/v1/sensor-data", json=reading(ts="2025-10-16T18:40:00Z"), timeout=30)
            # never 202: the reading is not in the buffer; the client is told to retry
            assert r.status_code == 503, r.text
            assert r.json() == {"error": "Buffer unavailable, retry later"}
            assert r.headers["retry-after"] == "1"
            health = await c.get("/health")
            assert health.status_code == 503
            body = health.json()
            assert body["status"] == "unhealthy"
            assert body["timestamp"]
            assert body["services"]["buffer"] == "down"
            ready = await c.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["ready"] is False
            assert ready.json()["timestamp"]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        r = await c.post("/api/v1/sensor-data", json=reading(ts="2025-10-16T18:40:00Z"))
        assert r.status_code == 202, r.text
        health = await c.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"
        ready = await c.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["ready"] is True


REPRO = """
import asyncio, json, sys, tempfile
from pathlib import Path
sys.path[:0] = [{tests!r}, {apps!r}]
import websockets
from sensor_support import sensor_engine

async def main() -> None:
    tmp = Path(tempfile.mkdtemp(dir={tmp!r}))
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    async with sensor_engine(tmp / "a", env={{"WIREWAY_AUTH": "none"}}):
        pass
    async with sensor_engine(tmp / "b") as engine:  # authentication on (the default)
        host, port = engine.http
        async with websockets.connect(f"ws://{{host}}:{{port}}/ws") as ws:
            await asyncio.wait_for(ws.recv(), 5)
            await ws.send(json.dumps({{"type": "subscribe", "filters": {{}}}}))
            print("REPLY " + await asyncio.wait_for(ws.recv(), 5), flush=True)

asyncio.run(main())
"""


def test_websocket_auth_follows_each_engine_in_one_process(tmp_path: Path) -> None:
    """A fresh process: an engine with `authentication: none`, stopped, then one with
    authentication on: its /ws must refuse a client without credentials."""
    script = textwrap.dedent(REPRO).format(
        tests=str(ROOT / "tests"), apps=str(ROOT / "tests" / "apps"), tmp=str(tmp_path)
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("REPLY ")]
    reply = json.loads(line.removeprefix("REPLY "))
    assert reply == {"type": "error", "message": "Unauthorized"}
