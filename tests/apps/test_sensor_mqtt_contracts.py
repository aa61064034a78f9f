"""The sensor application over the real broker: DLQ reasons, and MQTT -> PostgreSQL end to end
(issue 3, §2 MQTT, §4, §5, §6, §10)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from sensor_support import (
    ADMIN,
    PG,
    client,
    connected,
    metric,
    mqtt_env,
    reading,
    sensor_engine,
    temp_schema,
)
from websockets.asyncio.client import connect

from conftest import need_service, wireway
from support import eventually
from wireway.runtime.dlq import DlqAdmin


def errors(text: str, error_type: str) -> float:
    return metric(text, f'sensor_data_errors_total{{error_type="{error_type}"}}')


class Publisher:
    """A paho client of the test, publishing at QoS 1 (each publish waits for its PUBACK)."""

    def __init__(self, prefix: str) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{prefix}-pub")
        self.connected = threading.Event()
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()
        assert self.connected.wait(5), "the test's MQTT client did not connect"

    def publish(self, topic: str, body: bytes | dict[str, Any]) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        info = self.client.publish(topic, data, qos=1)
        info.wait_for_publish(5)
        assert info.is_published(), topic

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A topic prefix (and client id stem) no parallel run shares."""
    return f"tc-{request.node.name[:30]}-{uuid.uuid4().hex[:8]}"


async def test_bad_mqtt_messages_land_in_the_dlq_with_their_reason(tmp_path: Path, prefix: str) -> None:
    """Invalid JSON, an invalid reading and a topic/payload device_id mismatch, published
    over MQTT, each become a dead letter naming why, and are counted by error_type."""
    need_service("mosquitto", 1883)
    pub = Publisher(prefix)
    try:
        async with sensor_engine(tmp_path, env=mqtt_env(prefix)) as engine, client(engine) as c:
            await connected(engine)
            before = (await c.get("/metrics")).text
            topic = f"{prefix}/sensors/esp32-dlq/data"
            pub.publish(topic, b'{"device_id": "esp32-dlq", ')
            bad = reading("esp32-dlq", ld2410={"presence": True, "distance": -10})
            pub.publish(f"{prefix}/sensors/esp32-dlq/ld2410", bad)
            pub.publish(topic, reading("esp32-elsewhere", "2025-10-16T18:35:00Z"))
            assert engine.sqlite is not None
            await eventually(lambda: engine.sqlite.dlq_depth("sensors") == 3)

            with DlqAdmin(tmp_path / "data" / "buffer.db") as dlq:
                letters = dlq.list("sensors")
                shown = {row["message_id"]: dlq.show(row["message_id"]) for row in letters}
            reasons = [row["reason"] for row in letters]
            assert len(reasons) == 3, reasons
            assert any(r.startswith(f"invalid JSON on topic {topic}: ") for r in reasons), reasons
            assert (
                'topic mismatch: device_id is "esp32-elsewhere" in the payload but "esp32-dlq" in the topic'
                in reasons
            )
            # the field and the rule broken (the runtime strips the "validation: " prefix)
            assert any(
                r.removeprefix("validation: ") == "sensors.ld2410.distance: -10 is less than the minimum of 0"
                for r in reasons
            ), reasons
            payloads = [s["message"]["payload"] for s in shown.values() if s is not None]
            assert '{"device_id": "esp32-dlq", ' in payloads  # the raw text is kept
            assert any(isinstance(p, dict) and p.get("device_id") == "esp32-elsewhere" for p in payloads)

            after = (await c.get("/metrics")).text
            assert errors(after, "json_parse_error") == errors(before, "json_parse_error") + 1
            assert errors(after, "validation_error") == errors(before, "validation_error") + 1
            assert errors(after, "topic_mismatch") == errors(before, "topic_mismatch") + 1
            status = (await c.get("/api/v1/queue/status")).json()
            assert status["dlq_size"] == 3
            # what an operator sees: `wireway dlq list` on the data dir, while it runs
            listed = wireway(
                "dlq", "list", "--data-dir", str(tmp_path / "data"), env={"COLUMNS": "400"}, timeout=30
            )
            assert listed.returncode == 0, listed.stderr
            assert "3 shown" in listed.stdout
            assert "invalid JSON on topic" in listed.stdout
            assert "topic mismatch: device_id" in listed.stdout
            assert "sensors.ld2410.distance: -10 is less than the minimum of 0" in listed.stdout
            assert (await c.get("/api/v1/devices/esp32-elsewhere")).status_code == 404
    finally:
        pub.close()


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with temp_schema() as name:
        yield name


async def test_mqtt_to_postgres_live_clients_and_alerts(tmp_path: Path, prefix: str, schema: str) -> None:
    """Readings published at QoS 1 become rows in PostgreSQL (one per sensor type), reach a
    subscribed WebSocket client as sensor-data, and a gas spike (> 500 ppm) raises an alert
    seen in GET /api/v1/alerts and stored in the alerts table."""
    need_service("mosquitto", 1883)
    env = {**mqtt_env(prefix), "WIREWAY_STORAGE": f"{PG}?search_path={schema}"}
    conn = await asyncpg.connect(PG, server_settings={"search_path": schema})
    pub = Publisher(prefix)
    device = "esp32-pg"
    try:
        async with sensor_engine(tmp_path, env=env) as engine:
            await connected(engine)
            host, port = engine.http
            async with connect(f"ws://{host}:{port}/ws", additional_headers={"X-API-Key": ADMIN}) as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connected"
                await ws.send(
                    json.dumps({"type": "subscribe", "filters": {"device_id": device}, "alerts": True})
                )
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "subscribed"
                for i in range(5):
                    pub.publish(
                        f"{prefix}/sensors/{device}/data", reading(device, f"2025-10-16T18:50:{i:02d}Z")
                    )
                spike = reading(
                    device, "2025-10-16T18:50:30Z", mq134={"gas_concentration": 820, "unit": "ppm"}
                )
                pub.publish(f"{prefix}/sensors/{device}/mq134", spike)

                readings: list[dict[str, Any]] = []
                alerts: list[dict[str, Any]] = []
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 15
                while (len(readings) < 6 or not alerts) and loop.time() < deadline:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - loop.time())))
                    (readings if msg["type"] == "sensor-data" else alerts).append(msg)
                assert len(readings) == 6
                assert {m["data"]["device_id"] for m in readings} == {device}
                assert all(m["data"]["received_at"] and m["timestamp"] for m in readings)
                assert readings[-1]["data"]["sensors"]["mq134"]["gas_concentration"] == 820
                assert [a["type"] for a in alerts] == ["alert"]
                assert alerts[0]["data"]["rule"] == "high_gas_concentration"
                assert alerts[0]["data"]["device_id"] == device

            async def count(sql: str, *args: Any) -> int:
                return int(await conn.fetchval(sql, *args))

            for _ in range(200):
                if await count("SELECT count(*) FROM sensor_readings") >= 16:
                    break
                await asyncio.sleep(0.05)
            rows = await conn.fetch(
                "SELECT device_id, sensor_type, data, timestamp FROM sensor_readings ORDER BY id"
            )
            assert len(rows) == 5 * 3 + 1  # one row per sensor type per reading
            assert {r["device_id"] for r in rows} == {device}
            assert sorted({r["sensor_type"] for r in rows}) == ["ld2410", "mq134", "pir"]
            gas = [json.loads(r["data"]) for r in rows if r["sensor_type"] == "mq134"]
            assert {"gas_concentration": 820, "unit": "ppm"} in gas

            async with client(engine) as c:
                found = (await c.get("/api/v1/alerts", params={"device_id": device})).json()["alerts"]
                assert len(found) == 1
                assert found[0]["rule"] == "high_gas_concentration"
                assert found[0]["state"] == "open"
                assert found[0]["count"] == 1
            for _ in range(100):
                if await count("SELECT count(*) FROM alerts WHERE device_id = $1", device):
                    break
                await asyncio.sleep(0.05)
            stored = await conn.fetch("SELECT id, rule, device_id, state, count FROM alerts")
            assert [(r["rule"], r["device_id"], r["state"], r["count"]) for r in stored] == [
                ("high_gas_concentration", device, "open", 1)
            ]
            assert stored[0]["id"] == found[0]["id"]
    finally:
        pub.close()
        await conn.close()
