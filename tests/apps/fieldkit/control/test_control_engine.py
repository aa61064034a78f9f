"""The control API in a real engine over its supervisor (a `services:` section of
stand-ins): the answers of run-script and stop-script, a refused option that starts
nothing, and statusUpdate events from the supervisor's own changes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
from control_support import until
from websockets.asyncio.client import connect

from conftest import free_port
from support import engine_from

STANDINS = "wireway.apps.fieldkit.standins"


def deployment(tmp: Path, listen: int, gpsd: int, kismet: int) -> str:
    py = sys.executable
    return f"""
pattern: {{name: kit-control}}
interfaces:
  input:
    - {{type: kismet, name: kismet-api, url: "http://127.0.0.1:{kismet}", interval: 0.2, health_interval: 0.2,
       max_backoff: 0.5}}
  output:
    - {{type: file, address: "{tmp / "devices.jsonl"}", payload_only: true}}
processors:
  - fieldkit_control:
      listen: "127.0.0.1:{listen}"
      scripts: {{gps: [gpsd, mavgps], kismet: [kismet]}}
      config_dir: "{tmp}"
      kismet_input: kismet-api
services:
  gpsd:
    command: ["{py}", "-m", "{STANDINS}.gpsd", "-N", "-S", "{gpsd}"]
    ready: {{tcp: "127.0.0.1:{gpsd}", interval: 0.1}}
    autostart: false
  mavgps:
    command: ["{py}", "-m", "{STANDINS}.mavgps", "--gpsd", "127.0.0.1:{gpsd}"]
    depends_on: [gpsd]
    ready: {{log: connected, interval: 0.1}}
    autostart: false
  kismet:
    shell: true
    command: 'exec "$PY" -m {STANDINS}.kismet -c "$IFACE" -p "$LOGS"'
    env: {{PY: "{py}", IFACE: wlan2, LOGS: "{tmp / "kismet"}", KISMET_STANDIN_PORT: "{kismet}"}}
    depends_on: [gpsd]
    ready: {{http: "http://127.0.0.1:{kismet}/system/timestamp.json", interval: 0.1}}
    autostart: false
"""


async def test_scripts_on_the_engines_supervisor(tmp_path: Path) -> None:
    listen, gpsd, kismet = free_port(), free_port(), free_port()
    async with engine_from(tmp_path, deployment(tmp_path, listen, gpsd, kismet)) as engine:
        supervisor = engine.supervisor
        assert supervisor is not None
        base = f"http://127.0.0.1:{listen}/api/webhook"
        ws_url = f"ws://127.0.0.1:{listen}/webhook"
        async with (
            httpx.AsyncClient(base_url=base, trust_env=False, timeout=60) as http,
            connect(ws_url) as ws,
        ):
            await ws.send(json.dumps({"event": "subscribe", "data": {"channels": ["status"]}}))
            assert [s.state for s in supervisor.status()] == ["stopped", "stopped", "stopped"]

            refused = await http.post(
                "/run-script", json={"script": "kismet", "options": {"interface": "a b"}}
            )
            assert refused.status_code == 400
            assert refused.json()["error"] == "VALIDATION_ERROR"
            assert [s.state for s in supervisor.status()] == ["stopped", "stopped", "stopped"]

            r = await http.post("/run-script", json={"script": "kismet", "options": {"interface": "wlan5"}})
            assert r.status_code == 200, r.text
            kismet_status = supervisor.status("kismet")[0]
            assert r.json()["pid"] == kismet_status.pid
            assert supervisor.status("gpsd")[0].state == "ready"  # what kismet depends on, first
            assert "capturing on wlan5" in supervisor.log_path("kismet").read_text()
            again = await http.post("/run-script", json={"script": "kismet"})
            assert again.status_code == 409
            assert again.json()["details"] == f"PID: {kismet_status.pid}"

            async def devices() -> bool:
                got = await http.get("/kismet-data", params={"type": "devices"})
                return got.status_code == 200 and bool(got.json()["data"]["devices"])

            assert await until(devices)

            r = await http.post("/stop-script", json={"script": "gps"})  # gpsd: kismet stops first
            assert r.status_code == 200, r.text
            assert [s.state for s in supervisor.status()] == ["stopped", "stopped", "stopped"]
            status = (await http.get("/script-status")).json()["status"]
            assert status["kismet"]["running"] is False
            assert status["kismet"]["lastRunTime"].endswith("Z")
            missing = await http.post("/stop-script", json={"script": "kismet"})
            assert missing.status_code == 404

            seen: list[tuple[str, str]] = []
            async with asyncio.timeout(10):
                while ("kismet", "stopped") not in seen:
                    got = json.loads(await ws.recv())
                    if got["event"] == "statusUpdate" and "script" in got["data"]:
                        seen.append((got["data"]["script"], got["data"]["status"]))
            assert ("kismet", "running") in seen
