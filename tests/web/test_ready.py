"""/ready names the components that are down, also while it answers 200."""

from __future__ import annotations

from pathlib import Path

import httpx

from conftest import free_port
from support import base_url, engine_from, eventually

PATTERN = """
pattern: {{name: ready, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /in}}
    - {{type: mqtt, url: "mqtt://127.0.0.1:{port}", topics: [ready/#], client_id: ready-test}}
  output:
    - {{type: file, address: "{out}"}}
settings: {{buffer: memory}}
"""


async def test_ready_names_a_component_that_is_down_while_ready(tmp_path: Path) -> None:
    """An MQTT input whose broker is not there: /health is degraded, /ready is 200
    (HTTP ingestion carries on) and says `down: ["mqtt"]`; with all up, `down` is empty."""
    nobody = free_port()  # nothing listens there
    text = PATTERN.format(port=nobody, out=tmp_path / "out.jsonl")
    async with engine_from(tmp_path, text) as engine:
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:
            assert (await c.get("/health")).json()["services"]["mqtt"] == "down"
            ready = await c.get("/ready")
            assert ready.status_code == 200
            body = ready.json()
            assert body["ready"] is True
            assert body["down"] == ["mqtt"]
            assert body["timestamp"].endswith("Z")
            assert (await c.post("/in", json={"a": 1})).status_code == 202
    assert engine.readiness()[0] is False  # stopped: not accepting


async def test_ready_with_everything_up_has_an_empty_down_list(tmp_path: Path) -> None:
    """No component down: `down` is there, and empty."""
    text = PATTERN.format(port=0, out=tmp_path / "out.jsonl").replace(
        '    - {type: mqtt, url: "mqtt://127.0.0.1:0", topics: [ready/#], client_id: ready-test}\n', ""
    )
    async with engine_from(tmp_path, text) as engine:
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:
            await eventually(lambda: engine.health()["status"] == "healthy")
            ready = await c.get("/ready")
            assert ready.status_code == 200
            assert ready.json()["down"] == []
