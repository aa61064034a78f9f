"""Security headers on every HTTP response of the process's server: the API's
(`nosniff`, `Cache-Control: no-store`), the fast ingest paths' too, pages'
(`Content-Security-Policy`, `X-Frame-Options: DENY`), and the server's own answers
to broken requests. No CORS headers; bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import asyncio
import inspect
import socket
from pathlib import Path

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from apps.sensor_support import client, reading, sensor_engine
from conftest import free_port
from support import base_url, engine_from
from wireway.cli.main import run
from wireway.config import load_pattern
from wireway.runtime.engine import Engine

PATTERN = """
pattern: {{name: headers, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /in}}
  output:
    - {{type: file, address: "{out}"}}
settings: {{buffer: memory}}
"""


def api_headers(r: httpx.Response) -> None:
    assert r.headers["x-content-type-options"] == "nosniff", (r.request.url, r.headers)
    assert r.headers["cache-control"] == "no-store", (r.request.url, r.headers)
    assert "access-control-allow-origin" not in r.headers
    assert "server" not in r.headers  # the server's name and version stay private


async def page(request: Request) -> Response:
    return HTMLResponse("<!doctype html><title>x</title>")


async def cached(request: Request) -> Response:
    return JSONResponse({"a": 1}, headers={"Cache-Control": "max-age=60"})


async def test_every_response_of_the_engine_carries_them(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PATTERN.format(out=tmp_path / "out.jsonl"))
    pattern, errors = load_pattern(path)
    assert pattern is not None, errors
    extra = [Route("/page", page), Route("/cached", cached)]
    engine = Engine(
        [pattern], data_dir=tmp_path / "data", http=("127.0.0.1", free_port()), extra_routes=extra
    )
    await engine.start()
    try:
        origin = {"Origin": "https://elsewhere.example"}
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False, headers=origin) as c:
            for r in [
                await c.get("/health"),
                await c.get("/ready"),
                await c.get("/status"),
                await c.get("/metrics"),
                await c.get("/openapi.json"),
                await c.get("/nowhere"),  # 404
                await c.delete("/health"),  # 405
                await c.post("/in", json={"a": 1}),  # the fast path: 202
                await c.post("/in", content=b"{", headers={"content-type": "application/json"}),  # 400
                await c.options("/in", headers={"Access-Control-Request-Method": "POST"}),  # no CORS
            ]:
                api_headers(r)
            r = await c.get("/page")
            assert r.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
            assert r.headers["x-content-type-options"] == "nosniff"
            r = await c.get("/cached")  # a response's own caching is kept
            assert r.headers["cache-control"] == "max-age=60"
            assert r.headers["x-content-type-options"] == "nosniff"
        answer = await asyncio.to_thread(raw, engine.http[1], b"NOT HTTP AT ALL\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ")  # the server's own answer
        assert b"x-content-type-options: nosniff" in answer.lower()
    finally:
        await engine.shutdown()


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


async def test_the_sensor_applications_routes_carry_them(tmp_path: Path) -> None:
    async with sensor_engine(tmp_path) as engine, client(engine) as c, client(engine, key=None) as anonymous:
        for r in [
            await c.post("/api/v1/sensor-data", json=reading()),  # fast path, 202
            await c.post("/api/v1/sensor-data/batch", json=[reading(ts="2025-10-16T18:34:00Z")]),
            await c.post("/api/v1/sensor-data", json={"device_id": 1}),  # 400
            await anonymous.post("/api/v1/sensor-data", json=reading()),  # 401
            await c.get("/api/v1/devices"),
            await anonymous.get("/api/v1/devices"),
        ]:
            assert r.status_code < 500
            api_headers(r)


def test_the_server_binds_to_loopback_unless_told() -> None:
    assert inspect.signature(Engine).parameters["http"].default == ("127.0.0.1", 8080)
    assert inspect.signature(run).parameters["http"].default == "127.0.0.1:8080"


async def test_cors_only_for_the_configured_origins(tmp_path: Path) -> None:
    dash = "https://dash.example"
    text = PATTERN.format(out=tmp_path / "out.jsonl") + f'security: {{cors_origins: ["{dash}/"]}}\n'
    async with engine_from(tmp_path, text) as engine:
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:
            r = await c.get("/health", headers={"Origin": dash})
            assert r.headers["access-control-allow-origin"] == dash
            assert r.headers["vary"] == "Origin"
            r = await c.post("/in", json={"a": 1}, headers={"Origin": dash})  # the fast path
            assert r.status_code == 202
            assert r.headers["access-control-allow-origin"] == dash
            asking = {
                "Origin": dash,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key, content-type",
            }
            r = await c.options("/in", headers=asking)
            assert r.status_code == 204
            assert r.headers["access-control-allow-origin"] == dash
            assert "POST" in r.headers["access-control-allow-methods"]
            assert r.headers["access-control-allow-headers"] == "x-api-key, content-type"
            assert "access-control-allow-credentials" not in r.headers
            for other in ("https://evil.example", "null"):
                r = await c.get("/health", headers={"Origin": other})
                assert "access-control-allow-origin" not in r.headers
                r = await c.options("/in", headers={**asking, "Origin": other})
                assert "access-control-allow-origin" not in r.headers
