"""`wireway run --simulate N`: simulated devices posting over HTTP to this very process."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from wireway.apps.sensor_ingest.app import SensorApp
from wireway.apps.sensor_ingest.simulate import Simulator, post_http
from wireway.observability import logging as log

logger = log.get("simulator")


async def run_demo(engine: Any, devices: int, per_device_hz: float = 1.0) -> None:
    """Post readings from `devices` devices (1 per device per second) until cancelled."""
    app = engine.service(SensorApp)
    if app is None or app.keys is None:
        logger.warning("--simulate needs the sensor application; nothing to simulate")
        return
    key_id, key = await app.keys.create(None, role="admin")
    await app.keys.refresh()
    host, port = engine.http
    sim = Simulator(devices=devices, anomalies=0.01, malformed=0.005)
    logger.info("simulating devices over HTTP", devices=devices, rate=devices * per_device_hz)
    try:
        while True:
            await post_http(
                sim,
                url=f"http://{host}:{port}",
                rate=devices * per_device_hz,
                duration=60,
                api_key=key,
                concurrency=4,
            )
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(app.keys.revoke(key_id))
