"""run-script on the engine's supervisor is bounded: a service that never becomes
ready is 500 EXECUTION_FAILED after `start_timeout`, and the API is free for the stop
that follows (the start held no lock for ever)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from support import engine_from


def deployment(tmp: Path, listen: int) -> str:
    return f"""
pattern: {{name: kit-control}}
interfaces:
  input: [{{type: http, address: /in}}]
  output: [{{type: file, address: "{tmp / "out.jsonl"}"}}]
processors:
  - fieldkit_control:
      listen: "127.0.0.1:{listen}"
      scripts: {{slow: [slow]}}
      config_dir: "{tmp}"
      start_timeout: 1
services:
  slow:
    command: ["{sys.executable}", "-c", "import time; time.sleep(60)"]
    ready: {{log: "never printed", interval: 0.1}}
    autostart: false
"""


async def test_a_start_never_ready_is_500_and_can_be_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WIREWAY_RUN_DIR", str(tmp_path / "run"))
    listen = free_port()
    async with engine_from(tmp_path, deployment(tmp_path, listen)) as engine:
        supervisor = engine.supervisor
        assert supervisor is not None
        base = f"http://127.0.0.1:{listen}/api/webhook"
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=30) as http:
            r = await http.post("/run-script", json={"script": "slow"})
            assert r.status_code == 500, r.text
            body = r.json()
            assert body["error"] == "EXECUTION_FAILED"
            assert "not ready after 1 s" in body["details"]
            assert supervisor.status("slow")[0].state == "starting"
            again = await http.post("/run-script", json={"script": "slow"})
            assert again.status_code == 409
            stopped = await http.post("/stop-script", json={"script": "slow"})
            assert stopped.status_code == 200, stopped.text
            assert supervisor.status("slow")[0].state == "stopped"
