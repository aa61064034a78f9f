"""/health, /ready, /status and /metrics of a running engine, and `wireway status`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from conftest import wireway
from support import base_url, engine_from, eventually

PATTERN = """
pattern: {{name: obs, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /obs}}
  output:
    - {{type: file, address: "{out}"}}
"""


async def test_observability_endpoints(tmp_path: Path) -> None:
    """Every endpoint answers with the documented shape and metric names."""
    out = tmp_path / "o.jsonl"
    async with engine_from(tmp_path, PATTERN.format(out=out)) as engine:
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:
            assert (await c.post("/obs", json=[{"a": 1}, {"a": 2}])).status_code == 202
            await eventually(lambda: engine.runners[0].routes[0].delivered == 2)
            health = (await c.get("/health")).json()
            assert health["status"] == "healthy"
            assert health["services"]["buffer"] == "up"
            ready = await c.get("/ready")
            assert ready.status_code == 200
            assert ready.json()["ready"] is True
            status = (await c.get("/status")).json()
            (p,) = status["patterns"]
            assert p["name"] == "obs"
            assert p["counts"] == {"in": 2, "out": 2, "error": 0, "filtered": 0}
            assert p["buffer_depth"] == 0
            assert p["dlq_depth"] == 0
            assert p["outputs"][0]["breaker"] == "closed"
            assert p["uptime_seconds"] >= 0
            metrics = (await c.get("/metrics")).text
            assert (
                'wireway_messages_total{component="obs.file",outcome="delivered",pattern="obs"} 2.0'
                in metrics
            )
            assert "wireway_processing_latency_seconds_bucket" in metrics
            assert 'wireway_queue_size{queue_name="obs/obs.file"} 0.0' in metrics
            assert 'wireway_dlq_size{pattern="obs"} 0.0' in metrics
            assert "active_connections" in metrics
            table = await asyncio.to_thread(
                wireway, "status", "--http", "{}:{}".format(*engine.http), env={"COLUMNS": "200"}
            )
            assert table.returncode == 0, table.stderr
            assert "obs.file" in table.stdout
            assert "closed" in table.stdout
    # after shutdown the engine is not ready
    assert engine.readiness()[0] is False


def test_observe_many_matches_observe() -> None:
    """Observing a batch gives exactly the buckets, count and sum of observing one by one."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from wireway.observability.metrics import observe_many

    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("x", "x", registry=one, buckets=(0.01, 0.1, 1))
    h2 = Histogram("x", "x", registry=many, buckets=(0.01, 0.1, 1))
    values = [0.001, 0.01, 0.05, 0.1, 0.5, 2, 5]
    for v in values:
        h1.observe(v)
    observe_many(h2, values)

    def text(r: CollectorRegistry) -> list[str]:
        return [x for x in generate_latest(r).decode().splitlines() if "created" not in x]

    assert text(one) == text(many)
