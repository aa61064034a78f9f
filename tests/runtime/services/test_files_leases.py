"""PID files that are not trusted, and leases held by one owner at a time."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest
from services_support import alive, record_start, runs, script, service, supervisor

from support import eventually
from wireway.config.services import LeaseOptions
from wireway.runtime.services.files import PidFiles, PidRecord, run_dir, start_time
from wireway.runtime.services.leases import LeaseHeld, Leases
from wireway.runtime.services.process import LOG_MAX_BYTES, rotate
from wireway.supervision import ServiceError


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
