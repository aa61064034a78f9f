"""The http input: bodies, status codes, authentication and validation."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from support import base_url, engine_from, eventually
from wireway.runtime.engine import Engine

SCHEMA = {
    "type": "object",
    "required": ["id", "total"],
    "properties": {"id": {"type": "integer", "minimum": 1}, "total": {"type": "number"}},
}


def pattern(out: Path, security: str = "{authentication: none}") -> str:
    return f"""
pattern: {{name: orders, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest/orders}}
  output:
    - {{type: file, address: "{out}", format: jsonl}}
processors:
  - validate: {{schema: order.json}}
security: {security}
"""


def lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


async def client(engine: Engine) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url(engine), trust_env=False)


async def test_json_array_and_ndjson_are_accepted(tmp_path: Path) -> None:
    """One value, an array and JSON lines each answer 202 with the ids."""
    (tmp_path / "order.json").write_text(json.dumps(SCHEMA))
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(out)) as engine, await client(engine) as c:
        r1 = await c.post("/ingest/orders", json={"id": 1, "total": 2.5})
        r2 = await c.post("/ingest/orders", json=[{"id": 2, "total": 1}, {"id": 3, "total": 1}])
        r3 = await c.post(
            "/ingest/orders",
            content=b'{"id": 4, "total": 1}\n{"id": 5, "total": 1}\n',
            headers={"content-type": "application/x-ndjson"},
        )
        assert [r.status_code for r in (r1, r2, r3)] == [202, 202, 202]
        assert r2.json()["accepted"] == 2
        assert len(r2.json()["ids"]) == 2
        await eventually(lambda: len(lines(out)) == 5)
    got = lines(out)
    assert sorted(m["payload"]["id"] for m in got) == [1, 2, 3, 4, 5]  # type: ignore[index]
    first = next(m for m in got if m["messageId"] == r1.json()["ids"][0])
    assert first["source"] == "orders.http"
    assert first["messageType"] == "data"


async def test_invalid_values_get_400_with_reasons_and_nothing_is_kept(tmp_path: Path) -> None:
    """One bad item in an array: 400 naming index and field; the good ones are not kept."""
    (tmp_path / "order.json").write_text(json.dumps(SCHEMA))
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(out)) as engine, await client(engine) as c:
        r = await c.post("/ingest/orders", json=[{"id": 1, "total": 1}, {"id": 0}])
        assert r.status_code == 400
        body = r.json()
        assert body["error"] == "invalid input"
        (rej,) = body["rejected"]
        assert rej["index"] == 1
        assert "payload: 'total' is a required property" in rej["reasons"]
        assert "payload.id: 0 is less than the minimum of 1" in rej["reasons"]
        bad_json = await c.post(
            "/ingest/orders", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert bad_json.status_code == 400
        assert "invalid JSON" in bad_json.json()["rejected"][0]["reasons"][0]
        bad_env = await c.post(
            "/ingest/orders",
            json={"messageId": "x", "messageType": "Not a type!", "payload": {"id": 1, "total": 1}},
        )
        assert bad_env.status_code == 400
        assert "messageType" in bad_env.json()["rejected"][0]["reasons"][0]
        assert engine.runners[0].routes[0].queue.depth == 0
    assert lines(out) == []


async def test_a_refused_message_logs_the_message_id_its_sender_gave(tmp_path: Path) -> None:
    """A 400 logs, at INFO, the messageId of each refused envelope (a broken payload or a
    broken envelope); a bare value has no id of the sender's, and an accepted one no line."""
    from structlog.testing import capture_logs

    (tmp_path / "order.json").write_text(json.dumps(SCHEMA))
    out = tmp_path / "out.jsonl"
    values = [
        {"messageId": "order-7", "messageType": "data", "payload": {"id": 0}},
        {"id": 0},
        {"messageId": "order-8", "messageType": "Not a type!", "payload": {"id": 1, "total": 1}},
        {"messageId": "order-9", "messageType": "data", "payload": {"id": 9, "total": 1}},
    ]
    async with engine_from(tmp_path, pattern(out)) as engine, await client(engine) as c:
        with capture_logs() as logged:
            assert (await c.post("/ingest/orders", json=values)).status_code == 400
    refused = [line for line in logged if line["event"] == "message refused"]
    assert [(line["log_level"], line["message_id"]) for line in refused] == [
        ("info", "order-7"),
        ("info", "order-8"),
    ]
    assert all(line["input"] == "orders.http" for line in refused)


async def test_auth_size_and_content_type(tmp_path: Path) -> None:
    """401 without the key, 413 over the limit, 415 for another content type."""
    (tmp_path / "order.json").write_text(json.dumps(SCHEMA))
    sec = "{authentication: api_key, api_keys: [s3cret], max_body_bytes: 200}"
    async with engine_from(tmp_path, pattern(tmp_path / "o.jsonl", sec)) as engine:
        async with await client(engine) as c:
            ok = {"id": 1, "total": 1}
            assert (await c.post("/ingest/orders", json=ok)).status_code == 401
            wrong = await c.post("/ingest/orders", json=ok, headers={"X-API-Key": "nope"})
            assert wrong.status_code == 401
            good = await c.post("/ingest/orders", json=ok, headers={"X-API-Key": "s3cret"})
            assert good.status_code == 202
            bearer = await c.post("/ingest/orders", json=ok, headers={"Authorization": "Bearer s3cret"})
            assert bearer.status_code == 202
            big = await c.post(
                "/ingest/orders",
                json={"id": 1, "total": 1, "pad": "x" * 500},
                headers={"X-API-Key": "s3cret"},
            )
            assert big.status_code == 413
            text = await c.post(
                "/ingest/orders",
                content=b"hello",
                headers={"X-API-Key": "s3cret", "content-type": "text/plain"},
            )
            assert text.status_code == 415
            missing = await c.get("/nope")
            assert missing.status_code == 404
            assert missing.json() == {"error": "Not found", "path": "/nope"}
