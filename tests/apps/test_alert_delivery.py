"""Alerts leave through ordinary outputs and their outboxes: over MQTT to a broker that is
restarted meanwhile, and to a signed webhook that answers 500 before it recovers; every
notification arrives, none twice as two different events. Also: readings stored in the
sql output only, and occupancy following a device to its new location."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sensor_support import client, metric, reading, sensor_engine, sensor_service

from conftest import free_port
from support import eventually
from wireway.apps.sensor_ingest.migrations import tables

SECRET = "alert-secret"
GAS = {"mq134": {"gas_concentration": 900, "unit": "ppm"}}


class MosquittoProcess:
    """A mosquitto of the test's own on a free port, with persistence so that a durable
    subscriber's session (and the messages queued for it) survive a restart."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("mosquitto") is None:
            pytest.skip("mosquitto is not installed")
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


class Subscriber:
    """A durable QoS 1 subscriber (clean_session false) that records what it receives."""

    def __init__(self, port: int, topic: str) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"alerts-{port}", clean_session=False
        )
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self.on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.received.append(json.loads(msg.payload))

    def events(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(m["device_id"], m["event"]) for m in self.received]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Webhook:
    """A real HTTP receiver answering as scripted; keeps (status, headers, body) per request."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[tuple[int, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with hook.lock:
                    status = hook.statuses.pop(0) if hook.statuses else 200
                    hook.requests.append((status, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[str]:
        """The message ids of the requests answered 200."""
        with self.lock:
            return [h["x-wireway-message-id"] for s, h, _ in self.requests if s == 200]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


async def test_alerts_survive_a_broker_restart_and_a_failing_webhook(
    tmp_path: Path, webhook: Webhook
) -> None:
    """The broker goes away between two alerts and the webhook answers 500 twice: each
    alert reaches the MQTT subscriber once and the webhook once (the 500s were the same
    message, same id), signed."""
    broker = MosquittoProcess(tmp_path)
    broker.start()
    prefix = f"t{free_port()}"
    subscriber = Subscriber(broker.port, f"{prefix}/alerts/#")
    env = {
        "WIREWAY_MQTT_ENABLED": "true",
        "WIREWAY_MQTT_CLIENT_ID": f"wireway-{prefix}",
        "WIREWAY_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
        "WIREWAY_MQTT_PREFIX": prefix,
        "WIREWAY_ALERT_WEBHOOK_ENABLED": "true",
        "WIREWAY_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{webhook.port}/alerts",
        "WIREWAY_ALERT_WEBHOOK_SECRET": SECRET,
    }
    webhook.statuses = [500, 500]
    try:
        async with sensor_engine(tmp_path, env=env, edit=fast_retries) as engine, client(engine) as c:
            r = await c.post("/api/v1/sensor-data", json=reading("esp32-a", **GAS))
            assert r.status_code == 202, r.text
            await eventually(lambda: subscriber.events() == [("esp32-a", "raised")], timeout=20)
            broker.stop()
            r = await c.post("/api/v1/sensor-data", json=reading("esp32-b", **GAS))
            assert r.status_code == 202, r.text
            broker.start()
            await eventually(
                lambda: subscriber.events() == [("esp32-a", "raised"), ("esp32-b", "raised")], timeout=30
            )
            await eventually(lambda: len(webhook.accepted()) == 2, timeout=20)
            alerts = {a["device_id"]: a["id"] for a in sensor_service(engine).alerts.list()}  # type: ignore[union-attr]
    finally:
        subscriber.close()
        broker.stop()
    assert sorted(webhook.accepted()) == sorted(f"alert-{alerts[d]}-opened" for d in ("esp32-a", "esp32-b"))
    failed = [h["x-wireway-message-id"] for s, h, _ in webhook.requests if s == 500]
    assert len(failed) == 2
    assert set(failed) <= set(webhook.accepted())  # sent again as the same event
    for _, headers, body in webhook.requests:
        signed = headers["x-wireway-timestamp"].encode() + b"." + body
        expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-wireway-signature"], expected)
        assert json.loads(body)["event"] == "raised"


def fast_retries(text: str) -> str:
    """Retries every 50-200 ms instead of 0.2-30 s (the test waits for them), as many as
    it takes the broker to come back."""
    old = "settings: {timeout: 30, retries: 10,"
    assert old in text
    new = "settings: {backoff_base: 0.05, backoff_max: 0.2, breaker_timeout: 0.2, timeout: 30, retries: 300,"
    return text.replace(old, new)


async def test_open_alerts_come_back_after_a_restart(tmp_path: Path) -> None:
    """The state output stores every alert change; a new engine on the same storage lists
    the open alert and raises its count instead of opening another."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        assert (await c.post("/api/v1/sensor-data", json=reading("esp32-r", **GAS))).status_code == 202
        await eventually(lambda: bool(sensor_service(engine).alerts.list()))  # type: ignore[union-attr]
        (first,) = (await c.get("/api/v1/alerts")).json()["alerts"]
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        (restored,) = (await c.get("/api/v1/alerts")).json()["alerts"]
        assert restored["id"] == first["id"]
        assert restored["state"] == "open"
        later = reading("esp32-r", "2025-10-16T18:34:10Z", **GAS)
        assert (await c.post("/api/v1/sensor-data", json=later)).status_code == 202
        (again,) = (await c.get("/api/v1/alerts")).json()["alerts"]
        assert (again["id"], again["count"]) == (first["id"], 2)


async def test_an_alert_whose_batch_was_not_stored_is_sent_with_the_resend(tmp_path: Path) -> None:
    """The buffer commit of the reading that opened an alert fails (503): the alert's
    message was not stored either; the sender's resend carries it (once)."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        store = engine.sqlite
        assert store is not None
        real = store.enqueue
        calls = 0

        async def failing_once(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise OSError("disk I/O error")
            return await real(*args, **kwargs)

        store.enqueue = failing_once  # type: ignore[method-assign]
        spike = reading("esp32-f", **GAS)
        assert (await c.post("/api/v1/sensor-data", json=spike)).status_code == 503
        state = next(r for r in engine.runners[0].routes if r.iface.name == "state")
        assert state.queue.depth == 0  # nothing of that request was kept
        assert (await c.post("/api/v1/sensor-data", json=spike)).status_code == 202
        app = sensor_service(engine)
        assert app.db is not None
        table = tables(app.db).alerts
        await eventually_async(lambda: app.db.fetch(f"SELECT id, state FROM {table}"), 1)  # type: ignore[union-attr]
        (alert,) = app.alerts.list()  # type: ignore[union-attr]
        rows = await app.db.fetch(f"SELECT id, count FROM {table}")
        assert [(r["id"], r["count"]) for r in rows] == [(alert["id"], 1)]


async def eventually_async(fetch: Any, count: int, timeout: float = 10.0) -> None:
    """Wait until `await fetch()` gives `count` rows (bounded in time)."""
    deadline = time.monotonic() + timeout
    while len(await fetch()) != count:
        assert time.monotonic() < deadline, f"not {count} rows in {timeout}s"
        await asyncio.sleep(0.05)


async def test_only_readings_reach_the_readings_table(tmp_path: Path) -> None:
    """An alert and occupancy changes travel as messages, but the sql output's `when:`
    keeps the readings table to readings."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        assert (await c.post("/api/v1/sensor-data", json=reading("esp32-s", **GAS))).status_code == 202
        storage = next(r for r in engine.runners[0].routes if r.iface.name == "storage")
        await eventually(lambda: storage.delivered >= 1 and storage.queue.depth == 0)
        r = await c.get("/api/v1/readings", params={"device_id": "esp32-s"})
        assert r.status_code == 200, r.text
        assert storage.delivered == 1  # the reading; not its alert nor its occupancy change
        assert sensor_service(engine).alerts.list()  # type: ignore[union-attr]  # which was raised


async def test_a_device_moved_is_counted_at_its_new_location(tmp_path: Path) -> None:
    """New metadata with another location: the devices API and occupancy_count{location}
    agree at once, before the device's next reading."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        meta = {"device_id": "esp32-m", "metadata": {"location": "hall"}}
        assert (await c.post("/api/v1/devices/metadata", json=meta)).status_code == 200
        presence = {"ld2410": {"presence": True, "distance": 100, "energy": 50}}
        assert (await c.post("/api/v1/sensor-data", json=reading("esp32-m", **presence))).status_code == 202
        await eventually(lambda: sensor_service(engine).occupancy.snapshot("esp32-m")["occupied"])  # type: ignore[union-attr]
        text = (await c.get("/metrics")).text
        assert metric(text, 'occupancy_count{location="hall"}') == 1
        meta = {"device_id": "esp32-m", "metadata": {"location": "lab"}}
        assert (await c.post("/api/v1/devices/metadata", json=meta)).status_code == 200
        device = (await c.get("/api/v1/devices/esp32-m")).json()
        assert device["occupancy"]["location"] == "lab"
        assert device["occupancy"]["occupied"] is True
        text = (await c.get("/metrics")).text
        assert metric(text, 'occupancy_count{location="lab"}') == 1
        assert metric(text, 'occupancy_count{location="hall"}') == 0
        locations = {x["location"]: x for x in (await c.get("/api/v1/occupancy")).json()["locations"]}
        assert locations["lab"]["occupied"] == 1
        assert locations.get("hall", {"occupied": 0})["occupied"] == 0
