"""The control API's routes over real stand-in processes: every status code and body,
options refused before anything runs, status with psutil's figures, info's shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest
from control_support import control

from support import eventually


def is_error(body: dict[str, Any], code: str) -> None:
    assert body["success"] is False
    assert body["error"] == code
    assert set(body) == {"success", "error", "message", "details", "timestamp"}
    assert body["message"]
    assert body["timestamp"].endswith("Z")


def children() -> list[Any]:
    return list(psutil.Process().children(recursive=True))


async def test_run_status_and_stop_a_script(tmp_path: Path) -> None:
    """run-script starts gpsd then the bridge (200 with the pid), a second run is 409,
    status shows the figures, stop-script stops both (200), a second stop is 404."""
    async with control(tmp_path) as c, c.client() as http:
        r = await http.post("/api/webhook/run-script", json={"script": "gps"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"success", "message", "script", "pid", "timestamp"}
        assert body["success"] is True
        assert body["script"] == "gps"
        assert body["message"] == "Script started successfully"
        gpsd = c.procs.status("gpsd")[0]
        assert body["pid"] == gpsd.pid
        assert psutil.pid_exists(gpsd.pid)
        assert [s.state for s in c.procs.status()] == ["ready", "ready", "stopped"]

        again = await http.post("/api/webhook/run-script", json={"script": "gps"})
        assert again.status_code == 409
        is_error(again.json(), "ALREADY_RUNNING")
        assert again.json()["details"] == f"PID: {gpsd.pid}"

        status = (await http.get("/api/webhook/script-status", params={"script": "gps"})).json()
        assert status["success"] is True
        gps = status["status"]
        assert gps["running"] is True
        assert gps["pid"] == gpsd.pid
        assert gps["uptime"] >= 0
        assert gps["startTime"].endswith("Z")
        assert gps["memory"]["rss"] > 0
        assert gps["memory"]["vms"] >= gps["memory"]["rss"]
        assert isinstance(gps["cpu"], float)
        every = (await http.get("/api/webhook/script-status")).json()["status"]
        assert set(every) == {"gps", "kismet"}
        assert every["kismet"]["running"] is False
        assert every["kismet"]["pid"] is None

        stopped = await http.post("/api/webhook/stop-script", json={"script": "gps"})
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["message"] == "Script stopped successfully"
        assert stopped.json()["pid"] == gpsd.pid
        assert not psutil.pid_exists(gpsd.pid) or psutil.Process(gpsd.pid).status() == psutil.STATUS_ZOMBIE
        after = (await http.get("/api/webhook/script-status", params={"script": "gps"})).json()["status"]
        assert after["running"] is False
        assert after["lastRunTime"].endswith("Z")
        assert after["lastExitCode"] is not None

        missing = await http.post("/api/webhook/stop-script", json={"script": "gps"})
        assert missing.status_code == 404
        is_error(missing.json(), "NOT_RUNNING")


async def test_both_and_force(tmp_path: Path) -> None:
    """`both` starts gps then kismet; the interface option reaches Kismet; a forced stop
    (SIGKILL after SIGTERM) stops everything, dependents first."""
    async with control(tmp_path) as c, c.client() as http:
        r = await http.post(
            "/api/webhook/run-script", json={"script": "both", "options": {"interface": "wlan7"}}
        )
        assert r.status_code == 200, r.text
        assert [s.state for s in c.procs.status()] == ["ready", "ready", "ready"]
        assert ("kismet", {"IFACE": "wlan7"}) in c.procs.envs
        await eventually(lambda: "capturing on wlan7" in c.procs.log_path("kismet").read_text())
        r = await http.post("/api/webhook/stop-script", json={"script": "both", "force": True})
        assert r.status_code == 200, r.text
        assert [s.state for s in c.procs.status()] == ["stopped", "stopped", "stopped"]
        codes = {s.name: s.last_exit_code for s in c.procs.status()}
        assert codes["kismet"] == -9  # force: killed at once


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"script": "nmap"}, "INVALID_SCRIPT"),
        ({"script": "../../../etc/passwd"}, "INVALID_SCRIPT"),
        ({}, "INVALID_SCRIPT"),
        ({"script": "kismet", "options": {"interface": "wlan0; reboot"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"interface": "$(reboot)"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"interface": "wlan0abcdefghijkl"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"interface": "wlan0\n"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"interface": "-oProxy"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"interface": ".."}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"interface": ["wlan0"]}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"config": "kismet_site.conf\u0000"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"config": "sub/../../outside.conf"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"config": "`reboot`"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"config": "link.conf"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"config": "../../../../etc/passwd"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"config": "/etc/passwd"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"config": "kismet_site.conf; rm -rf /"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"config": "missing.conf"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": {"command": "sh"}}, "VALIDATION_ERROR"),
        ({"script": "kismet", "options": "-c wlan0"}, "VALIDATION_ERROR"),
    ],
)
async def test_refused_options_run_nothing(tmp_path: Path, body: dict[str, Any], code: str) -> None:
    """A bad script name, a shell metacharacter, a path out of the config folder or an
    unknown option: 400 and no process started."""
    async with control(tmp_path) as c, c.client() as http:
        outside = c.config_dir.parent / "outside.conf"  # exists, but out of the folder
        outside.write_text("source=wlan0\n")
        (c.config_dir / "link.conf").symlink_to(outside)
        (c.config_dir / "sub").mkdir()
        r = await http.post("/api/webhook/run-script", json=body)
        assert r.status_code == 400, r.text
        is_error(r.json(), code)
        assert c.procs.spawned == 0
        assert not children()


async def test_a_config_under_its_folder_is_given(tmp_path: Path) -> None:
    async with control(tmp_path) as c, c.client() as http:
        r = await http.post(
            "/api/webhook/run-script", json={"script": "kismet", "options": {"config": "kismet_site.conf"}}
        )
        assert r.status_code == 200, r.text
        assert (
            "kismet",
            {"KISMET_CONFIG": str((c.config_dir / "kismet_site.conf").resolve())},
        ) in c.procs.envs


async def test_bad_bodies_and_stop_errors(tmp_path: Path) -> None:
    async with control(tmp_path) as c, c.client() as http:
        r = await http.post("/api/webhook/run-script", content=b'{"invalid json')
        assert r.status_code == 400
        is_error(r.json(), "VALIDATION_ERROR")
        r = await http.post("/api/webhook/stop-script", json={"script": "gps", "force": "yes"})
        assert r.status_code == 400
        is_error(r.json(), "VALIDATION_ERROR")
        r = await http.post("/api/webhook/stop-script", json={"script": "rm"})
        assert r.status_code == 400
        is_error(r.json(), "INVALID_SCRIPT")
        r = await http.get("/api/webhook/script-status", params={"script": "nope"})
        assert r.status_code == 400
        is_error(r.json(), "INVALID_SCRIPT")
        r = await http.post("/api/webhook/run-script", content=b"x" * 70_000)
        assert r.status_code == 413


async def test_a_program_that_fails_is_500(tmp_path: Path) -> None:
    """A service whose program exits at once: EXECUTION_FAILED with its exit code."""
    async with control(tmp_path) as c, c.client() as http:
        c.procs.units["kismet"].spec.argv = ["sh", "-c", "exit 3"]
        c.procs.units["kismet"].spec.ready_port = None
        c.procs.units["kismet"].spec.ready_log = "never"
        r = await http.post("/api/webhook/run-script", json={"script": "kismet"})
        assert r.status_code == 500, r.text
        is_error(r.json(), "EXECUTION_FAILED")
        assert "kismet" in r.json()["details"]


async def test_admin_key_and_rate_limit(tmp_path: Path) -> None:
    async with control(tmp_path, api_key="s3cret", rate_limit=5) as c:
        async with c.client() as http:
            r = await http.get("/api/webhook/script-status")
            assert r.status_code == 401
            is_error(r.json(), "UNAUTHORIZED")
        async with c.client("s3cret") as http:
            codes = [(await http.get("/api/webhook/script-status")).status_code for _ in range(6)]
            assert codes == [200, 200, 200, 200, 200, 429]
            r = await http.get("/api/webhook/info")
            is_error(r.json(), "RATE_LIMITED")


async def test_info_shape(tmp_path: Path) -> None:
    async with control(tmp_path) as c, c.client() as http:
        r = await http.get("/api/webhook/info")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True
        system = body["system"]
        assert isinstance(system["hostname"], str)
        assert system["platform"] == "linux"
        assert system["arch"]
        assert system["uptime"] > 0
        assert len(system["loadAverage"]) == 3
        assert system["memory"]["total"] > 0
        assert float(system["disk"]["percentage"]) >= 0
        assert set(body["services"]) >= {"gpsd", "mavgps", "kismet", "paths"}
        assert body["services"]["gpsd"]["state"] == "stopped"
        assert body["services"]["paths"]["dataPath"] == str(tmp_path / "data")
        lo = next(i for i in body["network"]["interfaces"] if i["name"] == "lo")
        assert lo["type"] == "loopback"
        assert lo["address"] == "127.0.0.1"
        assert lo["monitoring"] is False
        cached = (await http.get("/api/webhook/info")).json()
        assert cached["system"] == body["system"]  # computed once a minute


async def test_a_stop_that_fails_is_500(tmp_path: Path) -> None:
    async with control(tmp_path) as c, c.client() as http:
        r = await http.post("/api/webhook/run-script", json={"script": "gps"})
        assert r.status_code == 200, r.text
        c.procs.stuck.add("gpsd")
        r = await http.post("/api/webhook/stop-script", json={"script": "gps"})
        assert r.status_code == 500, r.text
        is_error(r.json(), "STOP_FAILED")
        assert r.json()["details"] == "gpsd: gpsd did not exit after SIGKILL"
        c.procs.stuck.clear()


async def test_every_error_has_the_one_shape(tmp_path: Path) -> None:
    """An unknown route, a method a route does not take, and a fault inside a handler
    answer `{success: false, error, message, details, timestamp}` too."""
    async with control(tmp_path) as c, c.client() as http:
        r = await http.get("/api/webhook/no-such-route")
        assert r.status_code == 404
        is_error(r.json(), "NOT_FOUND")
        r = await http.get("/api/webhook/run-script")
        assert r.status_code == 405
        is_error(r.json(), "METHOD_NOT_ALLOWED")

        def broken() -> dict[str, Any]:
            raise RuntimeError("a fault")

        c.kit.info.get = broken  # type: ignore[method-assign]
        r = await http.get("/api/webhook/info")
        assert r.status_code == 500
        is_error(r.json(), "INTERNAL_ERROR")
        assert "a fault" not in r.text  # the fault is logged, not told
