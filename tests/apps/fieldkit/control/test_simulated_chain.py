"""`wireway init DIR --app fieldkit` ships the whole chain; `wireway run --app fieldkit
--simulate` runs it on a machine without a GPS receiver or a WiFi card: the stand-ins
start in order (each once what it depends on is ready), Kismet's rows stream through
the WigleToTAK pattern, the control API starts and stops scripts on the engine's real
supervisor, and SIGTERM stops everything, dependents first, leaving no process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from conftest import free_port, wireway


def test_init_ships_the_whole_chain(tmp_path: Path) -> None:
    result = wireway("init", str(tmp_path / "kit"), "--app", "fieldkit")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "kit").glob("*.yaml")) == [
        "control.yaml",
        "fieldkit.yaml",
        "services.yaml",
    ]
    check = wireway("check", str(tmp_path / "kit"))
    assert check.returncode == 0, check.stderr
    assert "pattern kit-control" in check.stdout


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def wait_for(check: Any, seconds: float, what: str) -> Any:
    """Ask `check` twice a second until it gives something truthy (bounded)."""
    for _ in range(int(seconds * 2)):
        try:
            found = check()
        except (httpx.HTTPError, KeyError, ValueError):
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"waited {seconds} s for {what}")


def events(lines: list[str], message: str) -> list[str]:
    found = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == message:
            found.append(str(record.get("service")))
    return found


def test_the_simulated_chain_starts_streams_and_stops_in_order(tmp_path: Path) -> None:
    gpsd, kismet, api, control, http = (free_port() for _ in range(5))
    env = {
        **os.environ,
        "FIELDKIT_GPSD_PORT": str(gpsd),
        "FIELDKIT_KISMET_PORT": str(kismet),
        "FIELDKIT_LISTEN": f"127.0.0.1:{api}",
        "FIELDKIT_CONTROL_LISTEN": f"127.0.0.1:{control}",
        "FIELDKIT_MULTICAST_ON": "false",  # nothing leaves the host
        "FIELDKIT_IFACE": "wlsim0",
        "FIELDKIT_GPS_DEVICE": str(tmp_path / "no-such-tty"),
        "WIREWAY_RUN_DIR": str(tmp_path / "run"),  # PID files and leases of this test only
    }
    env.pop("WIREWAY_CONFIG", None)
    argv = [sys.executable, "-m", "wireway", "run", "--app", "fieldkit", "--simulate"]
    argv += ["--data-dir", str(tmp_path / "data"), "--http", f"127.0.0.1:{http}", "--log-format", "json"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    base = f"http://127.0.0.1:{control}/api/webhook"
    resets = tmp_path / "data" / "fieldkit-simulate" / "standins" / "iface-standin.log"
    try:

        def every_ready() -> dict[str, Any] | None:
            s: dict[str, Any] = httpx.get(f"{base}/script-status", trust_env=False).json()["status"]
            states = [v["state"] for script in s.values() for v in script["services"].values()]
            return s if len(states) == 4 and set(states) == {"ready"} else None

        status = wait_for(every_ready, 60, "every service ready")
        assert status["gps"]["pid"] > 0
        started = events(lines, "service started")
        assert started.index("gpsd") < started.index("mavgps")
        assert started.index("gpsd") < started.index("kismet")
        assert any("gpsd: a stand-in" in line for line in lines)
        # streaming: Kismet's devices through the kismet input, its rows through WigleToTAK
        wait_for(
            lambda: httpx.get(f"{base}/kismet-data?type=devices", trust_env=False).json()["data"]["devices"],
            30,
            "Kismet's devices",
        )
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{api}/status", trust_env=False).json()["counts"][
                "rows_read"
            ],
            30,
            "rows read by the WigleToTAK pattern",
        )
        # the operators stop Kismet and start it again on another interface
        r = httpx.post(f"{base}/stop-script", json={"script": "kismet"}, trust_env=False, timeout=30)
        assert r.status_code == 200, r.text
        assert not answers(kismet)
        r = httpx.post(
            f"{base}/run-script",
            json={"script": "kismet", "options": {"interface": "wlsim1"}},
            trust_env=False,
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert answers(kismet)
        log = tmp_path / "data" / "services" / "kismet.log"
        wait_for(lambda: "capturing on wlsim1" in log.read_text(), 10, "Kismet on wlsim1")
        # the lease follows the interface: wlsim0 was reset to managed mode, wlsim1 is held
        assert "iw dev wlsim0 set type managed" in resets.read_text()
        held = json.loads((tmp_path / "run" / "leases" / "iface_wlsim1.json").read_text())
        assert (held["service"], held["mode"]) == ("kismet", "monitor")
        assert not (tmp_path / "run" / "leases" / "iface_wlsim0.json").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        finally:
            proc.kill()
        reader.join(5)
    assert code == 0, "\n".join(lines[-30:])
    ended = events(lines, "service ended")
    assert ended.index("kismet") < ended.index("gpsd")
    assert ended.index("mavgps") < ended.index("gpsd")
    assert not answers(gpsd)
    assert not answers(kismet)
    assert "iw dev wlsim1 set type managed" in resets.read_text()
    assert not list((tmp_path / "run" / "leases").glob("*.json"))
