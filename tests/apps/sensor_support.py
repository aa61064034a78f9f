"""Start the built-in sensor application in-process for a test, and the helpers the
sensor tests share (metrics, MQTT, a PostgreSQL schema of their own)."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as mqtt

from conftest import DATA, free_port, need_service
from support import eventually
from wireway.apps import builtin_path
from wireway.apps.sensor_ingest.app import SensorApp
from wireway.config import load_pattern
from wireway.runtime.engine import Engine

ADMIN = "test-admin-key"
PG = "postgresql://postgres@127.0.0.1:5432/test"
SAMPLES: dict[str, Any] = json.loads((DATA / "neurobuild_sensor_payloads.json").read_text())


@asynccontextmanager
async def sensor_engine(
    tmp: Path, *, env: dict[str, str] | None = None, edit: Any = None
) -> AsyncIterator[Engine]:
    """The built-in pattern with its data in `tmp` (MQTT off unless env turns it on)."""
    settings = {
        "WIREWAY_DATA_DIR": str(tmp / "data"),
        "WIREWAY_ADMIN_KEY": ADMIN,
        "WIREWAY_MQTT_ENABLED": "false",
        "WIREWAY_STORAGE": f"sqlite:///{tmp}/data/wireway.db",
        **(env or {}),
    }
    storage = settings["WIREWAY_STORAGE"]
    if "search_path=" in storage and "WIREWAY_SCHEMA" not in settings:
        # wireway's own tables in the test's schema too, apart from other tests' (and dropped with it)
        settings["WIREWAY_SCHEMA"] = storage.split("search_path=", 1)[1].split("&", 1)[0]
    old = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        text = (builtin_path() / "sensors.yaml").read_text()
        if edit is not None:
            text = edit(text)
        path = tmp / "sensors.yaml"
        path.write_text(text)
        pattern, errors = load_pattern(path)
        assert not errors, [str(e) for e in errors]
        assert pattern is not None
        engine = Engine([pattern], data_dir=tmp / "data", http=("127.0.0.1", free_port()))
        await engine.start()
        try:
            yield engine
        finally:
            await engine.shutdown()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sensor_service(engine: Engine) -> SensorApp:
    """The engine's sensor application service."""
    found = [s for s in engine.services if isinstance(s, SensorApp)]
    assert len(found) == 1, engine.services
    return found[0]


def client(engine: Engine, key: str | None = ADMIN) -> httpx.AsyncClient:
    host, port = engine.http
    headers = {"X-API-Key": key} if key else {}
    return httpx.AsyncClient(base_url=f"http://{host}:{port}", headers=headers, trust_env=False)


def reading(device: str = "esp32-001", ts: str = "2025-10-16T18:33:58Z", **sensors: Any) -> dict[str, Any]:
    return {
        "device_id": device,
        "timestamp": ts,
        "sensors": sensors
        or {
            "ld2410": {"presence": True, "distance": 150, "energy": 75},
            "pir": {"motion_detected": True},
            "mq134": {"gas_concentration": 250, "unit": "ppm"},
        },
    }


def metric(text: str, name: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


class Broker:
    """A paho client in the test: publishes at QoS 1 and records what it receives."""

    def __init__(self, port: int = 1883) -> None:
        self.received: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self.on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.received.append((msg.topic, json.loads(msg.payload)))

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)[1]

    def publish(self, topic: str, body: bytes | dict[str, Any]) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.client.publish(topic, data, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def mqtt_env(prefix: str) -> dict[str, str]:
    """The settings that turn MQTT on under a topic prefix of the test's own."""
    return {
        "WIREWAY_MQTT_ENABLED": "true",
        "WIREWAY_MQTT_PREFIX": prefix,
        "WIREWAY_MQTT_CLIENT_ID": f"wireway-{prefix}",
    }


async def connected(engine: Engine) -> None:
    """Wait until the engine reports its MQTT connection up."""
    await eventually(lambda: engine.health()["services"].get("mqtt") == "up", timeout=10)


@asynccontextmanager
async def temp_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema in PG (skipped when PostgreSQL is down), dropped afterwards."""
    need_service("postgresql", 5432)
    name = f"ww_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG)
    await conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
        await conn.close()
