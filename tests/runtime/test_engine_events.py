"""Each engine tells its own listeners, and only them, of rejections and deliveries."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from support import base_url, engine_from, eventually
from wireway.runtime.engine import Engine

SCHEMA = {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}


def pattern(out: Path) -> str:
    return f"""
pattern: {{name: orders, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - {{type: file, name: archive, address: "{out}", format: jsonl}}
processors:
  - validate: {{schema: order.json}}
  - dedupe: {{}}
security: {{authentication: none}}
"""


class Heard:
    """What one engine's listeners were told."""

    def __init__(self, engine: Engine) -> None:
        self.rejections: list[tuple[str, str]] = []
        self.deliveries: list[tuple[str, str, int]] = []
        engine.events.on_rejection(lambda pattern, reason: self.rejections.append((pattern, reason)))
        engine.events.on_delivered(
            lambda pattern, output, latencies: self.deliveries.append((pattern, output, len(latencies)))
        )


async def post(engine: Engine, value: object) -> int:
    async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:
        return (await c.post("/ingest", json=value)).status_code


async def test_an_engine_tells_only_its_own_listeners(tmp_path: Path) -> None:
    """Two engines running the same pattern in one process: a rejection, a duplicate
    (dedupe's) and a delivery in one are heard by its listeners, never by the other's."""
    engines: list[Path] = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "order.json").write_text(json.dumps(SCHEMA))
        engines.append(folder)
    envelope = {"messageId": "order-1", "messageType": "data", "payload": {"id": 1}}
    async with (
        engine_from(engines[0], pattern(engines[0] / "out.jsonl")) as first,
        engine_from(engines[1], pattern(engines[1] / "out.jsonl")) as second,
    ):
        assert first.events is not second.events
        heard_first, heard_second = Heard(first), Heard(second)
        assert await post(second, {"id": "not a number"}) == 400
        assert await post(second, envelope) == 202
        assert await post(second, envelope) == 202  # dropped by dedupe, acknowledged
        await eventually(lambda: sum(n for _, _, n in heard_second.deliveries) == 1)
        assert [pattern for pattern, _ in heard_second.rejections] == ["orders", "orders"]
        assert heard_second.rejections[1] == ("orders", "duplicate: already accepted")
        assert {(pattern, output) for pattern, output, _ in heard_second.deliveries} == {
            ("orders", "archive")
        }
        assert heard_first.rejections == []
        assert heard_first.deliveries == []
        assert await post(first, {"id": 2}) == 202
        await eventually(lambda: sum(n for _, _, n in heard_first.deliveries) == 1)
        assert len(heard_second.rejections) == 2
        assert sum(n for _, _, n in heard_second.deliveries) == 1
