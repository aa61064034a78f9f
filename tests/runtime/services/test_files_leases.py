"""PID files that are not trusted, and leases held by one owner at a time."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest
from services_support import PY, alive, isolated_run_dir, record_start, runs, script, service, supervisor

from support import eventually
from wireway.config.services import LeaseOptions
from wireway.runtime.services.files import PidFiles, PidRecord, run_dir, start_time
from wireway.runtime.services.leases import LeaseHeld, Leases
from wireway.runtime.services.process import LOG_MAX_BYTES, rotate
from wireway.supervision import ServiceError

__all__ = ["isolated_run_dir"]
SLEEP = script("import time; time.sleep(60)")


async def test_a_stale_pid_file_naming_another_process_is_not_trusted(tmp_path: Path) -> None:
    """The PID file names a living process that started at another time (a reused PID):
    wireway neither adopts nor signals it, and starts the service itself."""
    other = subprocess.Popen(script("import time; time.sleep(30)"))  # noqa: ASYNC220
    try:
        created = start_time(other.pid)
        assert created is not None
        pids = PidFiles(run_dir(tmp_path / "data"))
        pids.write(PidRecord("svc", other.pid, created - 1000.0, other.pid))
        log = tmp_path / "starts"
        sup = supervisor(
            tmp_path,
            service("svc", tmp_path, command=script(record_start(log) + "import time; time.sleep(60)")),
        )
        await sup.open()
        try:
            await eventually(lambda: sup.status("svc")[0].state == "ready" and len(runs(log)) == 1)
            assert sup.status("svc")[0].pid != other.pid
        finally:
            await sup.close()
        assert alive(other.pid)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


async def test_two_services_wanting_one_lease_never_hold_it_together(tmp_path: Path) -> None:
    """`first` holds the lease; `second` waits, then fails naming the owner; once
    `first` is stopped, `second` starts. Their runs never overlap."""
    log_a, log_b = tmp_path / "a", tmp_path / "b"
    lease = ["res:x"]
    sup = supervisor(
        tmp_path,
        service(
            "first",
            tmp_path,
            command=script(record_start(log_a) + "import time; time.sleep(60)"),
            leases=lease,
        ),
        service(
            "second",
            tmp_path,
            command=script(record_start(log_b) + "import time; time.sleep(60)"),
            leases=lease,
            lease_timeout=0.5,
        ),
    )
    await sup.open()
    try:
        await eventually(lambda: sup.status("second")[0].state == "failed", timeout=10)
        assert sup.status("first")[0].state == "ready"
        assert runs(log_b) == []
        with pytest.raises(ServiceError) as held:
            await sup.start("second")
        assert held.value.code == "LEASE_HELD"
        assert "first" in held.value.message
        stopped = await asyncio.wait_for(sup.stop("first"), 20)
        ended = stopped.last_run_time
        assert ended is not None
        status = await asyncio.wait_for(sup.start("second"), 10)
        assert status.state == "ready"
        await eventually(lambda: len(runs(log_b)) == 1)
        assert runs(log_b)[0][0] >= ended - 0.05
        assert len(runs(log_a)) == 1
    finally:
        await sup.close()


def test_a_lease_whose_holder_is_gone_is_freed_and_reset_at_start(tmp_path: Path) -> None:
    """The state file survives its holder; at start it is found orphaned, removed, and
    the lease's reset command runs (an interface back to managed mode)."""
    folder = tmp_path / "leases"
    reset_mark = tmp_path / "reset-ran"
    gone = subprocess.Popen(["true"])
    gone.wait()
    state = {
        "lease": "iface:wlan9",
        "service": "kismet",
        "mode": "monitor",
        "reset": ["touch", str(reset_mark)],
        "holder_pid": gone.pid,
        "holder_start": 1.0,
    }
    folder.mkdir()
    (folder / "iface_wlan9.json").write_text(json.dumps(state))
    leases = Leases(folder)
    assert leases.owner("iface:wlan9") is None
    leases.reconcile()
    assert reset_mark.exists()
    assert not (folder / "iface_wlan9.json").exists()
    leases.try_take(LeaseOptions(name="iface:wlan9", mode="managed"), "other")
    assert leases.owner("iface:wlan9")["service"] == "other"
    with pytest.raises(LeaseHeld, match="other"):
        Leases(folder).try_take(LeaseOptions(name="iface:wlan9"), "third")


async def test_on_restart_stop_stops_what_an_earlier_run_left_and_starts_it_anew(tmp_path: Path) -> None:
    """An earlier supervisor's loop is gone (as after a SIGKILL of wireway) and its
    process runs on with its PID file; `on_restart: stop` stops it before starting."""
    log = tmp_path / "starts"
    command = script(record_start(log) + "import time; time.sleep(60)")
    first = supervisor(tmp_path, service("svc", tmp_path, command=command))
    await first.open()
    await eventually(lambda: first.status("svc")[0].state == "ready" and len(runs(log)) == 1)
    old = first.status("svc")[0].pid
    assert old is not None
    for unit in first.units.values():  # the loop dies, the process does not
        assert unit.task is not None
        unit.task.cancel()
    second = supervisor(tmp_path, service("svc", tmp_path, command=command, on_restart="stop"))
    await second.open()
    try:
        await eventually(lambda: second.status("svc")[0].state == "ready" and len(runs(log)) == 2)
        assert not alive(old)
        assert second.status("svc")[0].pid != old
    finally:
        await second.close()


async def test_start_with_variables_for_that_run(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    code = script(
        f"import os, time\nopen({str(out)!r}, 'w').write(os.environ.get('IFACE', '-'))\ntime.sleep(60)"
    )
    sup = supervisor(
        tmp_path, service("svc", tmp_path, command=code, autostart=False, env={"IFACE": "wlan0"})
    )
    await sup.open()
    try:
        await asyncio.wait_for(sup.start("svc", env={"IFACE": "wlan2"}), 10)
        await eventually(lambda: out.exists() and out.read_text() == "wlan2")
        await asyncio.wait_for(sup.stop("svc"), 10)
        await asyncio.wait_for(sup.start("svc"), 10)  # the variables were for that run only
        await eventually(lambda: out.read_text() == "wlan0")
    finally:
        await sup.close()


def test_a_log_past_its_size_is_rotated_in_place(tmp_path: Path) -> None:
    """Copied to `.1` and truncated: the service keeps appending to the file it holds open."""
    log = tmp_path / "svc.log"
    with open(log, "ab") as held:
        held.write(b"x" * (LOG_MAX_BYTES + 1))
        held.flush()
        rotate(log)
        held.write(b"after\n")
    assert (tmp_path / "svc.log.1").stat().st_size == LOG_MAX_BYTES + 1
    assert log.read_bytes() == b"after\n"


async def test_a_service_runs_as_its_user_when_wireway_is_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    sup = supervisor(tmp_path, service("who", tmp_path, command=["id", "-u"], user="nobody", restart="no"))
    await sup.open()
    try:
        await eventually(lambda: sup.status("who")[0].state == "stopped")
        assert sup.log_path("who").read_text().strip() == str(pwd.getpwnam("nobody").pw_uid)
    finally:
        await sup.close()


def iface_service(tmp: Path, name: str = "kismet", **options: Any) -> Any:
    """A service holding `iface:$IFACE` in monitor mode, whose reset appends the
    interface it was given to `resets`; each start appends its IFACE to `ifaces`."""
    resets, ifaces = str(tmp / "resets"), str(tmp / "ifaces")
    code = (
        f"import os, time\nopen({ifaces!r}, 'a').write(os.environ['IFACE'] + '\\n')\n"
        "print('up', flush=True)\ntime.sleep(60)"
    )
    reset = [PY, "-c", f"import sys; open({resets!r}, 'a').write(sys.argv[1] + '\\n')", "$IFACE"]
    lease = {"name": "iface:$IFACE", "mode": "monitor", "reset": reset}
    settings: dict[str, Any] = {
        "env": {"IFACE": "wlan2"},
        "leases": [lease],
        "autostart": False,
        "ready": {"log": "^up$", "interval": 0.05},
    }
    return service(name, tmp, command=script(code), **{**settings, **options})


def gone_holder(state_file: Path) -> None:
    """The lease's holder is gone (as a killed wireway); the service's process is not."""
    state = json.loads(state_file.read_text())
    state["holder_pid"] = 2**22 + 1  # above any PID Linux gives (2**22): no such process
    state_file.write_text(json.dumps(state))


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


async def test_a_lease_follows_the_interface_each_start_is_given(tmp_path: Path) -> None:
    """`iface:$IFACE` is the interface of that run: a start on wlan3 holds iface:wlan3
    (not the default wlan2) and its stop resets wlan3; an interface another service
    holds is refused naming it, and nothing starts; a variable not set fails the start."""
    sup = supervisor(
        tmp_path,
        iface_service(tmp_path, lease_timeout=0.3),
        service("other", tmp_path, command=SLEEP, leases=["iface:wlan5"], autostart=False),
        service("bad", tmp_path, command=SLEEP, leases=["iface:$NO_SUCH_VAR"], autostart=False),
    )
    await sup.open()
    try:
        await asyncio.wait_for(sup.start("kismet", env={"IFACE": "wlan3"}), 10)
        owner = sup.leases.owner("iface:wlan3")
        assert owner is not None
        assert (owner["service"], owner["mode"], owner["pid"]) == (
            "kismet",
            "monitor",
            sup.status("kismet")[0].pid,
        )
        assert sup.leases.owner("iface:wlan2") is None
        assert sup.status("kismet")[0].leases == ("iface:wlan3",)
        await asyncio.wait_for(sup.stop("kismet"), 10)
        assert sup.status("kismet")[0].leases == ()
        assert lines(tmp_path / "resets") == ["wlan3"]
        assert sup.leases.owner("iface:wlan3") is None

        await asyncio.wait_for(sup.start("other"), 10)
        with pytest.raises(ServiceError) as held:
            await asyncio.wait_for(sup.start("kismet", env={"IFACE": "wlan5"}), 10)
        assert held.value.code == "LEASE_HELD"
        assert "iface:wlan5" in held.value.message
        assert "other" in held.value.message
        assert lines(tmp_path / "ifaces") == ["wlan3"]  # the refused start ran nothing
        assert sup.leases.owner("iface:wlan5")["service"] == "other"

        await asyncio.wait_for(sup.start("kismet"), 10)  # its own env: wlan2
        assert sup.leases.owner("iface:wlan2")["service"] == "kismet"
        assert lines(tmp_path / "ifaces") == ["wlan3", "wlan2"]

        with pytest.raises(ServiceError) as unset:
            await asyncio.wait_for(sup.start("bad"), 10)
        assert unset.value.code == "EXECUTION_FAILED"
        assert "NO_SUCH_VAR" in unset.value.message
    finally:
        await sup.close()
    assert lines(tmp_path / "resets") == ["wlan3", "wlan2"]


async def test_an_adopted_service_keeps_the_lease_and_variables_of_its_run(tmp_path: Path) -> None:
    """Started on wlan4, its supervisor's loop dies (as in a SIGKILL of wireway); the next
    supervisor adopts it with the variables of that run (from its PID file): it holds
    iface:wlan4, a restart runs on wlan4 again, and its stop resets wlan4."""
    first = supervisor(tmp_path, iface_service(tmp_path))
    await first.open()
    await asyncio.wait_for(first.start("kismet", env={"IFACE": "wlan4"}), 10)
    old = first.status("kismet")[0].pid
    for unit in first.units.values():  # the loop dies, the process does not
        assert unit.task is not None
        unit.task.cancel()
    gone_holder(tmp_path / "run" / "leases" / "iface_wlan4.json")
    second = supervisor(tmp_path, iface_service(tmp_path))
    await second.open()
    try:
        await eventually(lambda: second.status("kismet")[0].state == "ready")
        assert second.status("kismet")[0].pid == old
        assert second.leases.owner("iface:wlan4")["pid"] == old
        assert second.leases.owner("iface:wlan2") is None
        await asyncio.wait_for(second.restart("kismet"), 20)
        assert not alive(old)
        assert lines(tmp_path / "ifaces") == ["wlan4", "wlan4"]
        assert lines(tmp_path / "resets") == ["wlan4"]
        assert second.leases.owner("iface:wlan4")["service"] == "kismet"
    finally:
        await second.close()
    assert lines(tmp_path / "resets") == ["wlan4", "wlan4"]


async def test_a_stop_runs_the_reset_of_the_lease(tmp_path: Path) -> None:
    """Released on a stop (not only found orphaned at start): the reset command runs."""
    sup = supervisor(tmp_path, iface_service(tmp_path, autostart=True))
    await sup.open()
    try:
        await eventually(lambda: sup.status("kismet")[0].state == "ready")
        assert lines(tmp_path / "resets") == []
        await asyncio.wait_for(sup.stop("kismet"), 10)
        assert lines(tmp_path / "resets") == ["wlan2"]
    finally:
        await sup.close()


async def test_a_service_stopped_as_left_from_before_gives_its_lease_back(tmp_path: Path) -> None:
    """`on_restart: stop`, not started by itself: the process an earlier wireway left on
    wlan6 is stopped at start, and its lease freed with its reset run (not left held
    by no one, the interface in monitor mode)."""
    first = supervisor(tmp_path, iface_service(tmp_path))
    await first.open()
    await asyncio.wait_for(first.start("kismet", env={"IFACE": "wlan6"}), 10)
    old = first.status("kismet")[0].pid
    for unit in first.units.values():  # the loop dies, the process does not
        assert unit.task is not None
        unit.task.cancel()
    gone_holder(tmp_path / "run" / "leases" / "iface_wlan6.json")
    second = supervisor(tmp_path, iface_service(tmp_path, on_restart="stop"))
    await second.open()
    try:
        assert old is not None
        assert not alive(old)
        assert lines(tmp_path / "resets") == ["wlan6"]
        assert second.leases.owner("iface:wlan6") is None
        assert second.status("kismet")[0].state == "stopped"
    finally:
        await second.close()
