"""The sensor application over HTTP with SQLite: the existing service's contract."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import jwt
import pytest
from sensor_support import ADMIN, SAMPLES, client, metric, reading, sensor_engine, sensor_service

from support import eventually


def rows(
    tmp: Path, sql: str = "SELECT device_id, sensor_type, message_id FROM sensor_readings"
) -> list[tuple]:  # type: ignore[type-arg]
    with sqlite3.connect(tmp / "data" / "wireway.db") as conn:
        return conn.execute(sql).fetchall()


async def test_samples_accepted_or_rejected_as_marked(tmp_path: Path) -> None:
    """Every valid_* sample gets 202, every invalid_* one 400 naming the field."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        for name, sample in SAMPLES.items():
            if name.startswith("_"):
                continue
            r = await c.post("/api/v1/sensor-data", json=sample)
            if name.startswith("valid"):
                assert r.status_code == 202, (name, r.text)
                body = r.json()
                assert body["message"] == "Sensor data accepted"
                assert body["device_id"] == sample["device_id"]
                assert body["message_id"]
                assert body["timestamp"]
            else:
                assert r.status_code == 400, (name, r.text)
                assert r.json()["error"] == "Invalid sensor data"
                assert r.json()["details"]
        r = await c.post("/api/v1/sensor-data", json=SAMPLES["invalid_negative_distance"])
        assert r.json()["details"] == ["sensors.ld2410.distance: -10 is less than the minimum of 0"]
        r = await c.post("/api/v1/sensor-data", json=SAMPLES["invalid_missing_device_id"])
        assert r.json()["details"] == ["device_id: is required"]


async def test_all_errors_are_listed(tmp_path: Path) -> None:
    """A reading breaking several rules gets every one of them."""
    bad = reading(ld2410={"distance": 700, "energy": 101}, mq134={"gas_concentration": -1, "unit": "x"})
    bad["device_id"] = "bad id!"
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        r = await c.post("/api/v1/sensor-data", json=bad)
    details = r.json()["details"]
    assert any(d.startswith("device_id:") for d in details)
    assert "sensors.ld2410.presence: is required" in details
    assert "sensors.ld2410.distance: 700 is greater than the maximum of 600" in details
    assert "sensors.ld2410.energy: 101 is greater than the maximum of 100" in details
    assert "sensors.mq134.gas_concentration: -1 is less than the minimum of 0" in details
    assert any(d.startswith("sensors.mq134.unit:") for d in details)


async def test_readings_become_rows_once(tmp_path: Path) -> None:
    """One row per sensor type; the same device_id and timestamp again is 409, no new rows."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        r = await c.post("/api/v1/sensor-data", json=reading())
        assert r.status_code == 202
        await eventually(lambda: len(rows(tmp_path)) == 3)
        again = reading(pir={"motion_detected": False})
        dup = await c.post("/api/v1/sensor-data", json=again)
        assert dup.status_code == 409
        assert dup.json() == {"error": "Duplicate reading", "device_id": "esp32-001"}
        same_instant = reading(ts="2025-10-16T18:33:58.000+00:00")
        assert (await c.post("/api/v1/sensor-data", json=same_instant)).status_code == 409
        unknown = reading(ts="2025-10-16T18:34:00Z", bme280={"temperature": 21.5})
        assert (await c.post("/api/v1/sensor-data", json=unknown)).status_code == 202
        await eventually(lambda: len(rows(tmp_path)) == 4)
    types = sorted(t for _, t, _ in rows(tmp_path))
    assert types == ["bme280", "ld2410", "mq134", "pir"]
    stored = rows(
        tmp_path,
        "SELECT data, metadata, received_at FROM sensor_readings WHERE sensor_type='bme280'",
    )
    assert '"temperature"' in stored[0][0]


async def test_batch_results_per_reading(tmp_path: Path) -> None:
    """A batch answers 202 with accepted, failed and duplicate per reading."""
    batch = [
        reading(ts="2025-10-16T18:00:00Z"),
        SAMPLES["invalid_timestamp"],
        reading(ts="2025-10-16T18:00:00Z"),
        reading("esp32-009", "2025-10-16T18:00:01Z"),
    ]
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        r = await c.post("/api/v1/sensor-data/batch", json=batch)
        assert r.status_code == 202
        body = r.json()
        assert body["message"] == "Batch processed"
        assert body["total"] == 4
        assert [x["status"] for x in body["results"]] == [
            "accepted",
            "failed",
            "duplicate",
            "accepted",
        ]
        assert "timestamp" in body["results"][1]["error"]
        assert "message_id" in body["results"][0]
        empty = await c.post("/api/v1/sensor-data/batch", json=[])
        assert empty.status_code == 400
        too_many = await c.post("/api/v1/sensor-data/batch", json=[reading()] * 1001)
        assert too_many.status_code == 400
        status = (await c.get("/api/v1/queue/status")).json()
        assert set(status) == {"queue_size", "dlq_size", "timestamp"}
        missing = await c.get("/api/v1/nope")
        assert missing.status_code == 404
        assert missing.json() == {"error": "Not found", "path": "/api/v1/nope"}


async def test_authentication_failures(tmp_path: Path) -> None:
    """401 without or with a wrong key, 403 for another device, 413, 415, 429, revocation."""
    env = {"WIREWAY_JWT_SECRET": "jwt-test-secret-0123456789abcdef0123"}
    async with sensor_engine(tmp_path, env=env) as engine:
        app = sensor_service(engine)
        assert app.keys is not None
        key_id, device_key = await app.keys.create("esp32-001")
        await app.keys.refresh()
        async with client(engine, None) as anon:
            assert (await anon.post("/api/v1/sensor-data", json=reading())).status_code == 401
            assert (await anon.get("/api/v1/devices")).status_code == 401
        async with client(engine, "wrong") as bad:
            assert (await bad.post("/api/v1/sensor-data", json=reading())).status_code == 401
        async with client(engine, device_key) as dev:
            other = await dev.post("/api/v1/sensor-data", json=reading("esp32-002"))
            assert other.status_code == 403
            own = await dev.post("/api/v1/sensor-data", json=reading(ts="2025-10-16T10:00:00Z"))
            assert own.status_code == 202
            text = await dev.post("/api/v1/sensor-data", content=b"x", headers={"content-type": "text/plain"})
            assert text.status_code == 415
            big = await dev.post(
                "/api/v1/sensor-data",
                content=b"[" + b"1," * 600_000 + b"1]",
                headers={"content-type": "application/json"},
            )
            assert big.status_code == 413
            answers = [
                await dev.post("/api/v1/sensor-data", json=reading(ts=f"2025-10-16T11:00:{i:02d}Z"))
                for i in range(25)
            ]
            limited = [r for r in answers if r.status_code == 429]
            assert limited, "a burst of 25 should pass the burst of 20"
            assert int(limited[0].headers["retry-after"]) >= 1
            assert limited[0].json() == {"error": "Rate limit exceeded"}
        async with client(engine) as admin:  # the admin key is not rate limited
            codes = [
                (
                    await admin.post(
                        "/api/v1/sensor-data",
                        json=reading("esp32-003", f"2025-10-16T13:00:{i:02d}Z"),
                    )
                ).status_code
                for i in range(30)
            ]
            assert set(codes) == {202}
        token = jwt.encode({"sub": "esp32-004"}, "jwt-test-secret-0123456789abcdef0123", algorithm="HS256")
        async with client(engine, None) as j:
            j.headers["Authorization"] = f"Bearer {token}"
            assert (await j.post("/api/v1/sensor-data", json=reading("esp32-004"))).status_code == 202
            assert (await j.post("/api/v1/sensor-data", json=reading("esp32-005"))).status_code == 403
            j.headers["Authorization"] = "Bearer " + jwt.encode(
                {"sub": "x"}, "another-secret-0123456789abcdef0123", algorithm="HS256"
            )
            assert (await j.post("/api/v1/sensor-data", json=reading("x"))).status_code == 401
        await app.keys.revoke(key_id)
        async with client(engine, device_key) as dev:

            async def refused() -> bool:
                r = await dev.post("/api/v1/sensor-data", json=reading(ts="2025-10-16T14:00:00Z"))
                return r.status_code == 401

            deadline = asyncio.get_running_loop().time() + 5
            while not await refused():
                assert asyncio.get_running_loop().time() < deadline, "revoked key still accepted after 5 s"
                await asyncio.sleep(0.5)


async def test_devices_api(tmp_path: Path) -> None:
    """Metadata upsert (admin), list and get with latest values, counts and occupancy, delete."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        r = await c.post(
            "/api/v1/devices/metadata",
            json={"device_id": "esp32-001", "metadata": {"location": "lab", "secure_area": True}},
        )
        assert r.status_code == 200
        assert (await c.post("/api/v1/sensor-data", json=reading())).status_code == 202
        assert (await c.post("/api/v1/sensor-data", json=reading("esp32-002"))).status_code == 202

        async def counted() -> bool:
            d = (await c.get("/api/v1/devices/esp32-001")).json()
            return d.get("reading_count") == 1

        for _ in range(100):
            if await counted():
                break
            await asyncio.sleep(0.05)
        device = (await c.get("/api/v1/devices/esp32-001")).json()
        assert device["metadata"] == {"location": "lab", "secure_area": True}
        assert device["reading_count"] == 1
        assert device["latest"]["mq134"]["gas_concentration"] == 250
        assert device["first_seen"].startswith("2025-10-16T18:33:58")
        assert device["occupancy"]["occupied"] is True
        listed = (await c.get("/api/v1/devices")).json()
        assert {d["device_id"] for d in listed["devices"]} == {"esp32-001", "esp32-002"}
        stored = rows(tmp_path, "SELECT metadata FROM sensor_readings WHERE device_id='esp32-001' LIMIT 1")
        assert '"location"' in stored[0][0]
        assert (await c.delete("/api/v1/devices/esp32-002")).status_code == 200
        assert (await c.get("/api/v1/devices/esp32-002")).status_code == 404


@pytest.mark.parametrize("policy", ["reject"])
async def test_unknown_devices_can_be_rejected(tmp_path: Path, policy: str) -> None:
    """With unknown_devices: reject, a reading from an unregistered device is refused."""
    async with (
        sensor_engine(tmp_path, env={"WIREWAY_UNKNOWN_DEVICES": policy}) as engine,
        client(engine) as c,
    ):
        r = await c.post("/api/v1/sensor-data", json=reading("stranger"))
        assert r.status_code == 400
        assert "unknown device" in r.json()["details"][0]
        await c.post("/api/v1/devices/metadata", json={"device_id": "stranger", "metadata": {}})
        assert (await c.post("/api/v1/sensor-data", json=reading("stranger"))).status_code == 202


async def test_metrics_and_health(tmp_path: Path) -> None:
    """The team's metric names and the /health and /ready shapes."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        await c.post("/api/v1/sensor-data", json=reading())
        await c.post("/api/v1/sensor-data", json=SAMPLES["invalid_timestamp"])
        await eventually(lambda: len(rows(tmp_path)) == 3)
        await asyncio.sleep(0.1)
        text = (await c.get("/metrics")).text
        assert 'sensor_data_ingested_total{sensor_type="ld2410"}' in text
        assert 'sensor_data_errors_total{error_type="validation_error"}' in text
        assert 'sensor_data_processing_latency_seconds_bucket{le="0.005",operation="store"}' in text
        assert "queue_size{" in text
        # this client's keep-alive connection is open while /metrics is scraped
        assert 'active_connections{connection_type="http",kind="http"} 1.0' in text
        async with client(engine) as other:
            assert (await other.get("/health")).status_code == 200
            text = (await c.get("/metrics")).text
            assert 'active_connections{connection_type="http",kind="http"} 2.0' in text
        health = (await c.get("/health")).json()
        assert health["status"] == "healthy"
        assert health["services"]["storage"] == "up"
        ready = (await c.get("/ready")).json()
        assert ready["ready"] is True
        assert "timestamp" in ready


async def test_existing_clients_on_a_second_websocket_port(tmp_path: Path) -> None:
    """With WIREWAY_WEBSOCKET_PORT set, clients connect on that port at any path."""
    import json

    import websockets

    from conftest import free_port

    ws_port = free_port()
    async with (
        sensor_engine(tmp_path, env={"WIREWAY_WEBSOCKET_PORT": str(ws_port)}) as engine,
        client(engine) as c,
    ):
        async with websockets.connect(f"ws://127.0.0.1:{ws_port}/any/path?api_key={ADMIN}") as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv())["type"] == "pong"
            assert (await c.post("/api/v1/sensor-data", json=reading("esp32-077"))).status_code == 202
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert msg["type"] == "sensor-data"
            assert msg["data"]["device_id"] == "esp32-077"


async def test_rs256_jwt_from_a_public_key_file(tmp_path: Path) -> None:
    """WIREWAY_JWT_PUBLIC_KEY names a PEM file: RS256 tokens signed by its private key pass."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "jwt.pem").write_bytes(pem)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with sensor_engine(tmp_path, env={"WIREWAY_JWT_PUBLIC_KEY": str(tmp_path / "jwt.pem")}) as engine:
        async with client(engine, None) as c:
            good = jwt.encode({"sub": "esp32-rs"}, private, algorithm="RS256")
            c.headers["Authorization"] = f"Bearer {good}"
            assert (await c.post("/api/v1/sensor-data", json=reading("esp32-rs"))).status_code == 202
            forged = jwt.encode({"sub": "esp32-rs"}, other, algorithm="RS256")
            c.headers["Authorization"] = f"Bearer {forged}"
            r = await c.post("/api/v1/sensor-data", json=reading("esp32-rs", "2025-10-16T18:40:00Z"))
            assert r.status_code == 401


async def test_occupancy_in_metrics(tmp_path: Path) -> None:
    """A reading with presence makes its device occupied in /metrics, by location."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        await c.post(
            "/api/v1/devices/metadata", json={"device_id": "esp32-occ", "metadata": {"location": "hall"}}
        )
        assert (await c.post("/api/v1/sensor-data", json=reading("esp32-occ"))).status_code == 202
        text = ""
        for _ in range(100):
            text = (await c.get("/metrics")).text
            if 'occupancy{device_id="esp32-occ",location="hall"} 1.0' in text:
                break
            await asyncio.sleep(0.05)
        assert 'occupancy{device_id="esp32-occ",location="hall"} 1.0' in text
        assert 'occupancy_count{location="hall"} 1.0' in text


async def test_readings_checked_by_http_are_not_checked_twice(tmp_path: Path) -> None:
    """The HTTP input checks a reading once; sensor_enrich skips the readings of the
    inputs that check their own (named in the application), not those of others."""
    from wireway.apps.sensor_ingest import enrich

    calls: list[object] = []
    original = enrich.check_reading

    def counting(value: object, now: float | None = None) -> list[str]:
        calls.append(value)
        return original(value, now)

    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        enrich.check_reading = counting  # type: ignore[assignment]
        try:
            r = await c.post("/api/v1/sensor-data/batch", json=[reading("esp32-010", "2025-10-16T18:00:05Z")])
            assert r.status_code == 202
        finally:
            enrich.check_reading = original
        assert len(calls) == 1  # the http input's own check; sensor_enrich skipped it
        assert sensor_service(engine).checked_sources == {"http"}
        assert engine.runners[0].counts["in"] == 1


async def test_full_buffer_is_refused_before_the_body_is_read(tmp_path: Path) -> None:
    """503 with Retry-After while a buffer is full, before the body is decoded (a
    client retrying under overload costs no validation); 202 again once there is room."""
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        queue = engine.runners[0].routes[0].queue
        places = queue.free()
        queue.reserve(places)  # as if ingest calls had taken every place
        for path in ("/api/v1/sensor-data", "/api/v1/sensor-data/batch"):
            r = await c.post(path, content=b"{not json", headers={"content-type": "application/json"})
            assert r.status_code == 503, r.text
            assert r.json() == {"error": "Service busy, retry later"}
            assert int(r.headers["retry-after"]) >= 1
        metrics = (await c.get("/metrics")).text
        assert 'sensor_data_errors_total{error_type="backpressure"} 2.0' in metrics
        queue.unreserve(places)
        assert (await c.post("/api/v1/sensor-data", json=reading())).status_code == 202


async def test_bad_bodies_get_the_services_400(tmp_path: Path) -> None:
    """Malformed JSON and a batch that is not an array of 1 to 1,000 readings get the
    existing service's 400 body, `Invalid sensor data` with details; JSON errors counted."""
    parse_errors = 'sensor_data_errors_total{error_type="json_parse_error"}'
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        before = metric((await c.get("/metrics")).text, parse_errors)
        headers = {"content-type": "application/json"}
        for path in ("/api/v1/sensor-data", "/api/v1/sensor-data/batch"):
            r = await c.post(path, content=b'{"device_id": "esp32-001",', headers=headers)
            assert r.status_code == 400
            body = r.json()
            assert body["error"] == "Invalid sensor data"
            assert body["details"][0].startswith("invalid JSON: ")
        expected = {
            "error": "Invalid sensor data",
            "details": ["expected a JSON array of 1 to 1000 readings"],
        }
        for bad in (reading(), [], [reading()] * 1001):
            r = await c.post("/api/v1/sensor-data/batch", json=bad)
            assert (r.status_code, r.json()) == (400, expected)
        assert metric((await c.get("/metrics")).text, parse_errors) == before + 2


async def test_a_refused_reading_logs_its_message_id(tmp_path: Path) -> None:
    """A 400 logs, at INFO, the messageId the reading would have had (when it names its
    device and time); a body without them logs nothing to name."""
    from structlog.testing import capture_logs

    from wireway.apps.sensor_ingest.http_input import reading_id

    bad = {"device_id": "esp32-400", "timestamp": "2025-10-16T18:33:58Z", "sensors": {}}
    async with sensor_engine(tmp_path) as engine, client(engine) as c:
        with capture_logs() as lines:
            assert (await c.post("/api/v1/sensor-data", json=bad)).status_code == 400
            assert (await c.post("/api/v1/sensor-data", json={"sensors": {}})).status_code == 400
    refused = [line for line in lines if line["event"] == "reading refused"]
    assert [(line["log_level"], line["message_id"]) for line in refused] == [("info", reading_id(bad))]
