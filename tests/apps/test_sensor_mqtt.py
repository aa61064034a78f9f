"""The sensor application over the real MQTT broker: rows, DLQ, duplicates, live, alerts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import websockets
from sensor_support import ADMIN, Broker, client, connected, metric, mqtt_env, reading, sensor_engine

from conftest import need_service
from support import eventually

DUPLICATES = 'sensor_data_errors_total{error_type="duplicate"}'


def count_rows(tmp: Path) -> int:
    with sqlite3.connect(tmp / "data" / "wireway.db") as conn:
        return int(conn.execute("SELECT count(*) FROM sensor_readings").fetchone()[0])


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return "t-" + request.node.name.replace("[", "-").replace("]", "")[:40]


async def test_mqtt_readings_rows_dlq_and_duplicates(tmp_path: Path, prefix: str) -> None:
    """Valid readings become rows; bad JSON, bad readings and topic mismatches go to the DLQ;
    a redelivered reading makes no second row."""
    need_service("mosquitto", 1883)
    broker = Broker()
    try:
        async with sensor_engine(tmp_path, env=mqtt_env(prefix)) as engine:
            await connected(engine)
            broker.publish(f"{prefix}/sensors/esp32-001/data", reading())
            no_id = reading("esp32-002")
            del no_id["device_id"]
            broker.publish(f"{prefix}/sensors/esp32-002/pir", no_id)  # device id from the topic
            await eventually(lambda: count_rows(tmp_path) == 6)
            async with client(engine) as c:
                before = metric((await c.get("/metrics")).text, DUPLICATES)
            broker.publish(f"{prefix}/sensors/esp32-001/data", reading())  # a redelivery
            broker.publish(f"{prefix}/sensors/esp32-001/data", b"{not json")
            broker.publish(f"{prefix}/sensors/esp32-001/data", reading(ts="yesterday"))
            broker.publish(f"{prefix}/sensors/esp32-001/data", reading("esp32-777"))
            assert engine.sqlite is not None
            await eventually(lambda: engine.sqlite.dlq_depth("sensors") == 3)
            await asyncio.sleep(0.3)
            assert count_rows(tmp_path) == 6
            async with client(engine) as c:
                text = (await c.get("/metrics")).text
            assert 'sensor_data_errors_total{error_type="json_parse_error"}' in text
            assert 'sensor_data_errors_total{error_type="topic_mismatch"}' in text
            assert 'sensor_data_errors_total{error_type="validation_error"}' in text
            assert metric(text, DUPLICATES) == before + 1
            assert (
                metric(
                    text,
                    'wireway_messages_total{component="dedupe",outcome="duplicate",pattern="sensors"}',
                )
                >= 1
            )
    finally:
        broker.close()


async def test_a_prefix_of_several_levels(tmp_path: Path, prefix: str) -> None:
    """WIREWAY_MQTT_PREFIX=site/x: the device id is still the level before data/pir/..."""
    need_service("mosquitto", 1883)
    deep = f"site-a/{prefix}"
    broker = Broker()
    try:
        async with sensor_engine(tmp_path, env=mqtt_env(deep)) as engine:
            await connected(engine)
            no_id = reading("esp32-009")
            del no_id["device_id"]
            broker.publish(f"{deep}/sensors/esp32-009/data", no_id)  # device id from the topic
            broker.publish(f"{deep}/sensors/esp32-010/mq134", reading("esp32-010"))
            await eventually(lambda: count_rows(tmp_path) == 6)
            assert engine.sqlite is not None
            assert engine.sqlite.dlq_depth("sensors") == 0
    finally:
        broker.close()


async def test_live_clients_and_alerts(tmp_path: Path, prefix: str) -> None:
    """A WebSocket client gets readings and alerts; a gas spike raises one alert on MQTT and
    the API, a second spike raises its count; ack and clear work."""
    need_service("mosquitto", 1883)
    broker = Broker()
    broker.subscribe(f"{prefix}/alerts/#")
    try:
        async with sensor_engine(tmp_path, env=mqtt_env(prefix)) as engine:
            await connected(engine)
            host, port = engine.http
            async with websockets.connect(f"ws://{host}:{port}/ws?api_key={ADMIN}") as ws:
                hello = json.loads(await ws.recv())
                assert hello["type"] == "connected"
                await ws.send(
                    json.dumps({"type": "subscribe", "filters": {"device_id": "esp32-001"}, "alerts": True})
                )
                assert json.loads(await ws.recv())["type"] == "subscribed"
                spike = reading(mq134={"gas_concentration": 900, "unit": "ppm"})
                broker.publish(f"{prefix}/sensors/esp32-001/data", spike)
                got: dict[str, Any] = {}
                while set(got) != {"sensor-data", "alert"}:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    got[msg["type"]] = msg
                assert got["sensor-data"]["data"]["sensors"]["mq134"]["gas_concentration"] == 900
                assert got["sensor-data"]["data"]["received_at"]
                assert got["alert"]["data"]["rule"] == "high_gas_concentration"
            second = reading(ts="2025-10-16T18:34:10Z", mq134={"gas_concentration": 950, "unit": "ppm"})
            broker.publish(f"{prefix}/sensors/esp32-001/data", second)
            async with client(engine) as c:

                async def alerts() -> list[dict[str, Any]]:
                    return (await c.get("/api/v1/alerts", params={"device_id": "esp32-001"})).json()["alerts"]

                for _ in range(100):
                    found = await alerts()
                    if found and found[0]["count"] == 2:
                        break
                    await asyncio.sleep(0.05)
                (alert,) = await alerts()
                assert alert["count"] == 2
                assert alert["state"] == "open"
                acked = await c.post(f"/api/v1/alerts/{alert['id']}/ack")
                assert acked.json()["state"] == "acknowledged"
                cleared = await c.post(f"/api/v1/alerts/{alert['id']}/clear")
                assert cleared.json()["state"] == "cleared"
                assert (await c.get("/api/v1/alerts", params={"state": "open"})).json()["alerts"] == []
            await eventually(lambda: any(t.endswith("/alerts/esp32-001") for t, _ in broker.received))
    finally:
        broker.close()


async def test_broker_restart_loses_nothing(tmp_path: Path, prefix: str) -> None:
    """A private Mosquitto restarted mid-run: every reading published at QoS 1 is stored once."""
    import shutil
    import socket
    import subprocess

    from conftest import free_port

    if shutil.which("mosquitto") is None:
        need_service("mosquitto (binary)", 1)
    port = free_port()
    conf = tmp_path / "m.conf"
    (tmp_path / "mq").mkdir()
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\nuser root\n"
        f"persistence_location {tmp_path}/mq/\nlog_dest file {tmp_path}/mq.log\nlog_type all\n"
    )

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc
            except OSError:
                import time

                time.sleep(0.05)
        raise RuntimeError("private mosquitto did not start")

    proc = start()
    env = {**mqtt_env(prefix), "WIREWAY_MQTT_URL": f"mqtt://127.0.0.1:{port}"}
    try:
        async with sensor_engine(tmp_path, env=env) as engine:
            await connected(engine)
            pub = Broker(port)
            for i in range(50):
                pub.publish(
                    f"{prefix}/sensors/d{i % 5}/data",
                    reading(f"d{i % 5}", f"2025-10-16T18:00:{i:02d}Z", pir={"motion_detected": True}),
                )
            pub.close()
            proc.terminate()
            proc.wait(10)
            await eventually(lambda: engine.health()["services"].get("mqtt") == "down", timeout=10)
            proc = start()
            await connected(engine)
            pub = Broker(port)
            for i in range(50, 100):
                pub.publish(
                    f"{prefix}/sensors/d{i % 5}/data",
                    reading(
                        f"d{i % 5}",
                        f"2025-10-16T18:01:{i - 50:02d}Z",
                        pir={"motion_detected": True},
                    ),
                )
            pub.close()
            await eventually(lambda: count_rows(tmp_path) == 100, timeout=20)
    finally:
        proc.terminate()
        proc.wait(10)
    assert count_rows(tmp_path) == 100


async def test_enriched_readings_to_mqtt_events_and_redis(tmp_path: Path, prefix: str) -> None:
    """With the event outputs on, enriched readings go to <prefix>/events/{device_id} and
    to the Redis channel sensor-events."""
    import redis.asyncio as aioredis

    need_service("mosquitto", 1883)
    need_service("redis", 6379)
    broker = Broker()
    broker.subscribe(f"{prefix}/events/#")
    rclient = aioredis.from_url("redis://127.0.0.1:6379/0")
    pubsub = rclient.pubsub()
    await pubsub.subscribe("sensor-events")
    env = {**mqtt_env(prefix), "WIREWAY_EVENTS_MQTT": "true", "WIREWAY_EVENTS_REDIS": "true"}
    try:
        async with sensor_engine(tmp_path, env=env) as engine:
            await connected(engine)
            async with client(engine) as c:
                assert (await c.post("/api/v1/sensor-data", json=reading("esp32-042"))).status_code == 202
            await eventually(lambda: any(t == f"{prefix}/events/esp32-042" for t, _ in broker.received))
            ((_, event),) = [(t, p) for t, p in broker.received if t.endswith("/events/esp32-042")]
            assert event["device_id"] == "esp32-042"
            assert "received_at" in event
            assert "device_metadata" in event
            found = None
            for _ in range(100):
                m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if m and json.loads(m["data"]).get("device_id") == "esp32-042":
                    found = json.loads(m["data"])
                    break
            assert found is not None
            assert found["sensors"]["mq134"]["gas_concentration"] == 250
    finally:
        broker.close()
        await pubsub.aclose()
        await rclient.aclose()


async def test_same_reading_over_mqtt_then_http_is_a_duplicate(tmp_path: Path, prefix: str) -> None:
    """Both inputs derive one messageId from device_id and the instant of its timestamp,
    so a reading first seen over MQTT is a 409 over HTTP, even written differently."""
    need_service("mosquitto", 1883)
    broker = Broker()
    try:
        async with sensor_engine(tmp_path, env=mqtt_env(prefix)) as engine:
            await connected(engine)
            broker.publish(f"{prefix}/sensors/esp32-500/data", reading("esp32-500", "2025-10-16T18:33:58Z"))
            await eventually(lambda: count_rows(tmp_path) == 3)
            async with client(engine) as c:
                r = await c.post(
                    "/api/v1/sensor-data", json=reading("esp32-500", "2025-10-16T20:33:58.000+02:00")
                )
            assert r.status_code == 409
    finally:
        broker.close()
