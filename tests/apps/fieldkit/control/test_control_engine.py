"""The control API in a real engine over its supervisor (a `services:` section of
stand-ins): the answers of run-script and stop-script, a refused option that starts
nothing, and statusUpdate events from the supervisor's own changes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import psutil
import pytest
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
    leases: [{{name: "iface:$IFACE", mode: monitor}}]
    lease_timeout: 0.3
    autostart: false
  scanner:
    command: ["{py}", "-c", "import time; time.sleep(60)"]
    leases: ["iface:wlan9"]
"""


REFUSED = [
    {"interface": "a b"},
    {"interface": "wlan0;reboot"},
    {"interface": "$(reboot)"},
    {"interface": "-oProxy"},
    {"interface": "wlan0\n"},
    {"config": "../../../etc/passwd"},
    {"config": "/etc/passwd"},
    {"config": "x.conf; rm -rf /"},
    {"config": "x.conf\u0000"},
    {"command": "sh"},
]


async def test_scripts_on_the_engines_supervisor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIREWAY_RUN_DIR", str(tmp_path / "run"))  # leases of this test only
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
            await until(lambda: asyncio.sleep(0, supervisor.status("scanner")[0].state == "ready"))
            states = {s.name: s.state for s in supervisor.status()}
            assert states == {"gpsd": "stopped", "mavgps": "stopped", "kismet": "stopped", "scanner": "ready"}
            children = {p.pid for p in psutil.Process().children(recursive=True)}

            for options in REFUSED:  # 400, and nothing runs
                refused = await http.post("/run-script", json={"script": "kismet", "options": options})
                assert refused.status_code == 400, (options, refused.text)
                assert refused.json()["error"] == "VALIDATION_ERROR"
            assert {s.name: s.state for s in supervisor.status()} == states
            assert {p.pid for p in psutil.Process().children(recursive=True)} == children

            # wlan9 is the scanner's: 500 naming it, and Kismet does not run
            held = await http.post(
                "/run-script", json={"script": "kismet", "options": {"interface": "wlan9"}}
            )
            assert held.status_code == 500, held.text
            assert held.json()["error"] == "EXECUTION_FAILED"
            assert "iface:wlan9 is held by scanner" in held.json()["details"]
            log = supervisor.log_path("kismet")
            assert not log.exists() or "wlan9" not in log.read_text()
            await http.post("/stop-script", json={"script": "gps"})

            r = await http.post("/run-script", json={"script": "kismet", "options": {"interface": "wlan5"}})
            assert r.status_code == 200, r.text
            kismet_status = supervisor.status("kismet")[0]
            assert r.json()["pid"] == kismet_status.pid
            assert supervisor.status("gpsd")[0].state == "ready"  # what kismet depends on, first
            assert "capturing on wlan5" in supervisor.log_path("kismet").read_text()
            lease = supervisor.leases.owner("iface:wlan5")  # the lease follows the interface
            assert lease is not None
            assert (lease["service"], lease["mode"], lease["pid"]) == ("kismet", "monitor", kismet_status.pid)
            assert supervisor.leases.owner("iface:wlan2") is None
            info = (await http.get("/info")).json()["services"]
            assert info["kismet"]["leases"] == ["iface:wlan5"]
            assert info["scanner"]["leases"] == ["iface:wlan9"]
            again = await http.post("/run-script", json={"script": "kismet"})
            assert again.status_code == 409
            assert again.json()["details"] == f"PID: {kismet_status.pid}"

            async def devices() -> bool:
                got = await http.get("/kismet-data", params={"type": "devices"})
                return got.status_code == 200 and bool(got.json()["data"]["devices"])

            assert await until(devices)

            r = await http.post("/stop-script", json={"script": "gps"})  # gpsd: kismet stops first
            assert r.status_code == 200, r.text
            assert {s.name: s.state for s in supervisor.status()} == states  # scanner still ready
            assert supervisor.leases.owner("iface:wlan5") is None
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
