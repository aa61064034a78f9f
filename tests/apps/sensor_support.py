"""Start the built-in sensor application in-process for a test."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from conftest import SHARED, free_port
from wireway.apps import builtin_path
from wireway.config import load_pattern
from wireway.runtime.engine import Engine

ADMIN = "test-admin-key"
SAMPLES: dict[str, Any] = json.loads((SHARED / "formats" / "neurobuild_sensor_payloads.json").read_text())


@asynccontextmanager
async def sensor_engine(
    tmp: Path, *, env: dict[str, str] | None = None, edit: Any = None
) -> AsyncIterator[Engine]:
    """The built-in pattern with its data in `tmp` (MQTT off unless env turns it on)."""
    settings = {
        "WIREWAY_DATA_DIR": str(tmp / "data"),
        "WIREWAY_ADMIN_KEY": ADMIN,
        "WIREWAY_MQTT_ENABLED": "false",
        "WIREWAY_STORAGE": f"sqlite:///{tmp}/data/sensors.db",
        **(env or {}),
    }
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
