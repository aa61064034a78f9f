"""Hostile and broken HTTP requests: each gets a 4xx with its reason (never a 500),
raises a counter, and the process carries on.

The sensor application's routes count in `sensor_data_errors_total{error_type}`,
the generic `http` input in `wireway_messages_total{outcome="refused"}`. A body
or headers trickled in slower than `security.body_timeout` get 408 and the
connection closes; the request line and headers are bounded (414, 431).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.sensor_support import ADMIN, client, metric, reading, sensor_engine
from support import base_url, engine_from
from wireway.runtime.engine import Engine

DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000

# (body, counter label, words the reason holds)
HOSTILE: dict[str, tuple[bytes, str, str]] = {
    "nested 10,000 levels": (DEEP, "too_deep", "nested deeper"),
    "objects nested 10,000 levels": (DEEP_OBJECT, "too_deep", "nested deeper"),
    "nested 65 levels": (b"[" * 65 + b"]" * 65, "too_deep", "nested deeper"),
    "invalid UTF-8": (b'{"device_id": "\xff\xfe", "sensors": {}}', "json_parse_error", "UTF-8"),
    "NaN": (b'{"device_id": "d", "x": NaN}', "json_parse_error", "invalid JSON"),
    "Infinity": (b'{"device_id": "d", "x": Infinity}', "json_parse_error", "invalid JSON"),
    "a number beyond float range": (b'{"device_id": "d", "x": 1e400}', "json_parse_error", "out of range"),
    "an integer beyond 64 bits": (b'{"x": ' + b"9" * 400 + b"}", "json_parse_error", "out of range"),
    "a duplicate key": (b'{"device_id": "a", "device_id": "b"}', "duplicate_key", "repeats a key"),
    "a duplicate key, escaped": (b'{"device_id": "a", "\\u0064evice_id": "b"}', "duplicate_key", "repeats"),
    "a lone surrogate": (b'{"device_id": "\\ud800"}', "json_parse_error", "invalid JSON"),
    "truncated": (b'{"device_id": "a", "sensors": {', "json_parse_error", "invalid JSON"),
}


async def scrape(c: httpx.AsyncClient, name: str) -> float:
    return metric((await c.get("/metrics")).text, name)


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_sensor_route_refuses_a_hostile_body_and_counts_it(tmp_path: Path, case: str) -> None:
    body, kind, words = HOSTILE[case]
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        series = f'sensor_data_errors_total{{error_type="{kind}"}}'
        before = await scrape(c, series)
        for path in ("/api/v1/sensor-data", "/api/v1/sensor-data/batch"):
            r = await c.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400, (path, r.status_code, r.text[:300])
            assert r.headers["content-type"] == "application/json"
            assert words in json.dumps(r.json()), r.text[:300]
        assert await scrape(c, series) == before + 2
        assert (await c.post("/api/v1/sensor-data", json=reading())).status_code == 202  # still up


async def test_sensor_routes_count_the_other_refusals(tmp_path: Path) -> None:
    """Too big (413), a wrong content type (415), 1,001 readings in a batch (400),
    wrong types (400): each refused with its reason and counted."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:

        async def refused(status: int, kind: str, path: str, **request: Any) -> dict[str, Any]:
            series = f'sensor_data_errors_total{{error_type="{kind}"}}'
            before = await scrape(c, series)
            r = await c.post(path, **request)
            assert r.status_code == status, (kind, r.status_code, r.text[:300])
            assert await scrape(c, series) == before + 1, kind
            answer: dict[str, Any] = r.json()
            return answer

        json_type = {"content-type": "application/json"}
        big = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
        body = await refused(413, "payload_too_large", "/api/v1/sensor-data", content=big, headers=json_type)
        assert body["limit_bytes"] == 1048576
        body = await refused(415, "unsupported_media_type", "/api/v1/sensor-data", content=b"a=1")
        assert "application/json" in body["error"]
        batch = [reading(ts=f"2025-10-16T18:{i // 60:02d}:{i % 60:02d}Z") for i in range(1001)]
        body = await refused(400, "batch_too_large", "/api/v1/sensor-data/batch", json=batch)
        assert "1 to 1000 readings" in body["details"][0]
        wrong = {"device_id": 7, "timestamp": [], "sensors": {"pir": {"motion_detected": "yes"}}}
        body = await refused(400, "validation_error", "/api/v1/sensor-data", json=wrong)
        assert any("device_id" in d for d in body["details"]), body
        assert any("motion_detected" in d for d in body["details"]), body
        await refused(400, "validation_error", "/api/v1/sensor-data/batch", json={"not": "a list"})
        # a sensor's name longer than its rows' sensor_type column (found by schemathesis):
        # refused at once, not accepted and then dead-lettered by the storage output
        long_name = reading(**{"s" * 51: {"x": 1}})
        body = await refused(400, "validation_error", "/api/v1/sensor-data", json=long_name)
        assert "is too long" in body["details"][0]
        # an instant before year 1 in UTC (found by schemathesis): refused, not a 500
        early = reading(ts="0001-01-01T00:00:00.0+00:03")
        body = await refused(400, "validation_error", "/api/v1/sensor-data", json=early)
        assert "before 0001-01-01" in body["details"][0]
        early["sensors"]["pir"] = {"motion_detected": [None]}
        r = await c.post("/api/v1/sensor-data/batch", json=[early])
        assert r.status_code == 202
        assert r.json()["results"][0]["status"] == "failed"


GENERIC = """
pattern: {{name: hostile, type: port-mapping}}
interfaces:
  input:
    - {{type: http, name: in, address: /in, max_items: 100}}
  output:
    - {{type: file, address: "{out}"}}
settings: {{buffer: memory}}
security: {{max_body_bytes: 65536, body_timeout: 2}}
"""


@pytest.fixture
async def generic(tmp_path: Path) -> Any:
    async with engine_from(tmp_path, GENERIC.format(out=tmp_path / "out.jsonl")) as engine:
        yield engine


async def test_http_input_refuses_hostile_bodies_and_counts_them(generic: Engine) -> None:
    series = 'wireway_messages_total{component="in",outcome="refused",pattern="hostile"}'
    async with httpx.AsyncClient(base_url=base_url(generic), trust_env=False) as c:
        for case, (body, _, words) in HOSTILE.items():
            before = await scrape(c, series)
            r = await c.post("/in", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400, (case, r.status_code, r.text[:300])
            assert words in json.dumps(r.json()), (case, r.text[:300])
            assert await scrape(c, series) == before + 1, case
        lines = b'{"a": 1}\n' + DEEP + b'\n{"a": 1, "a": 2}\n'
        r = await c.post("/in", content=lines, headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 400
        reasons = [p["reasons"][0] for p in r.json()["rejected"]]
        assert [p["line"] for p in r.json()["rejected"]] == [2, 3]
        assert "nested deeper" in reasons[0]
        assert "repeats a key" in reasons[1]
        for status, request in (
            (413, {"content": b"[" + b"1," * 40_000 + b"1]"}),  # over max_body_bytes
            (413, {"json": list(range(101))}),  # over max_items
            (415, {"content": b"x", "headers": {"content-type": "text/plain"}}),
            (400, {"content": b"", "headers": {"content-type": "application/json"}}),
        ):
            before = await scrape(c, series)
            r = await c.post("/in", **request)
            assert r.status_code == status, (status, r.text[:200])
            assert r.json()["error"]
            assert await scrape(c, series) == before + 1
        # plain JSON still goes in: nested 64 levels, colons and escapes in strings
        ok = [[1]] * 3 + [json.loads("[" * 63 + "]" * 63), {"t": "12:00:00", "q": 'a\\"b:', "n": {"x": 1}}]
        r = await c.post("/in", json=ok)
        assert r.status_code == 202, r.text


def raw_request(port: int, chunks: list[bytes], pause: float, limit: int = 40) -> tuple[bytes, int]:
    """Send `chunks` one at a time `pause` seconds apart (at most `limit`), then read
    what the server answers until it closes; (answer, chunks sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            for chunk in chunks[:limit]:
                s.sendall(chunk)
                sent += 1
                time.sleep(pause)
        except OSError:  # closed by the server while sending
            pass
        answer = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except OSError:
                break
            if not data:
                break
            answer += data
    return answer, sent


async def test_a_body_trickled_in_is_cut_off_with_408(generic: Engine) -> None:
    """A byte every 0.5 s against body_timeout 2: 408 and the connection closed,
    within a few bytes (the test would send 40)."""
    port = generic.http[1]
    head = b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    answer, sent = await asyncio.to_thread(raw_request, port, [head] + [b" "] * 40, 0.5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"connection: close" in answer.lower()
    assert b"x-content-type-options: nosniff" in answer.lower()
    assert sent < 12, sent
    async with httpx.AsyncClient(base_url=base_url(generic), trust_env=False) as c:
        assert (await c.post("/in", json={"a": 1})).status_code == 202  # the server is fine


async def test_headers_trickled_in_are_cut_off_with_408(generic: Engine) -> None:
    port = generic.http[1]
    chunks = [b"POST /in HTTP/1.1\r\n"] + [b"X-Slow-%d: 1\r\n" % i for i in range(40)]
    answer, sent = await asyncio.to_thread(raw_request, port, chunks, 0.5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert sent < 12, sent


async def test_a_connection_that_sends_nothing_is_closed(generic: Engine) -> None:
    answer, _ = await asyncio.to_thread(raw_request, generic.http[1], [], 0)
    assert answer == b""  # closed by the server (within body_timeout), nothing said


async def test_header_count_size_and_request_line_are_bounded(generic: Engine) -> None:
    port = generic.http[1]
    many = b"".join(b"X-H-%d: 1\r\n" % i for i in range(101))
    answer, _ = await asyncio.to_thread(raw_request, port, [b"GET /health HTTP/1.1\r\n" + many + b"\r\n"], 0)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    big = b"X-Big: " + b"a" * 17_000 + b"\r\n"
    answer, _ = await asyncio.to_thread(raw_request, port, [b"GET /health HTTP/1.1\r\n" + big + b"\r\n"], 0)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    long_url = b"GET /health?" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"
    answer, _ = await asyncio.to_thread(raw_request, port, [long_url], 0)
    assert answer.startswith(b"HTTP/1.1 414 "), answer[:200]
    huge = b"POST /in HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n[]"
    answer, _ = await asyncio.to_thread(raw_request, port, [huge], 0)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]  # at once, on what it declares
    fine = b"".join(b"X-H-%d: 1\r\n" % i for i in range(90))
    request = b"GET /health HTTP/1.1\r\nConnection: close\r\n" + fine + b"\r\n"
    answer, _ = await asyncio.to_thread(raw_request, port, [request], 0)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


async def test_sensor_body_timeout_is_counted(tmp_path: Path) -> None:
    """The sensor application's slow body: 408, and sensor_data_errors_total{body_timeout}."""

    def edit(text: str) -> str:
        return text.replace("  max_body_bytes: 1048576\n", "  max_body_bytes: 1048576\n  body_timeout: 2\n")

    async with sensor_engine(tmp_path, edit=edit) as engine, client(engine) as c:
        series = 'sensor_data_errors_total{error_type="body_timeout"}'
        before = await scrape(c, series)
        head = (
            b"POST /api/v1/sensor-data HTTP/1.1\r\nHost: x\r\nX-API-Key: " + ADMIN.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
        )
        answer, _ = await asyncio.to_thread(raw_request, engine.http[1], [head] + [b" "] * 40, 0.5)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        await asyncio.sleep(0.2)  # the handler counts once told the client is gone
        assert await scrape(c, series) == before + 1


async def test_admin_routes_refuse_hostile_bodies_and_queries(tmp_path: Path) -> None:
    """The device metadata route reads its body as the ingest routes do (bounded, depth
    checked), and a timestamp query beyond the calendar is a 400, not a 500."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        headers = {"content-type": "application/json", "X-API-Key": ADMIN}
        r = await c.post("/api/v1/devices/metadata", content=DEEP, headers=headers)
        assert r.status_code == 400, r.text[:300]
        assert "nested deeper" in r.text
        huge = b'{"device_id": "d", "metadata": {"x": "' + b"a" * 200_000 + b'"}}'
        r = await c.post("/api/v1/devices/metadata", content=huge, headers=headers)
        assert r.status_code == 413, r.text[:300]
        ok = {"device_id": "d", "metadata": {"room": "a"}}
        assert (await c.post("/api/v1/devices/metadata", json=ok, headers=headers)).status_code == 200
        query = {"until": "0001-01-01T01:00:26+20:24"}
        for path in ("/api/v1/readings/export", "/api/v1/readings"):
            r = await c.get(path, params={**query, "device_id": "d"}, headers=headers)
            assert r.status_code == 400, (path, r.status_code, r.text[:300])
