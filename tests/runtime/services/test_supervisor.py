"""The supervisor with real processes: order, readiness, dependencies, backoff, stop."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

import pytest
from services_support import (
    alive,
    isolated_run_dir,
    record_start,
    runs,
    script,
    service,
    supervisor,
    wait_gone,
)

from support import eventually
from wireway.supervision import ServiceError

__all__ = ["isolated_run_dir"]
SLEEP = script("import time; time.sleep(60)")


async def test_a_dependent_starts_only_once_its_dependency_is_ready(tmp_path: Path) -> None:
    """The dependency becomes ready (its file appears) a while after starting: the
    dependent starts after that, not when the dependency's process starts."""
    flag = tmp_path / "flag"
    log = tmp_path / "starts"
    slow = script(
        record_start(log) + f"import time; time.sleep(0.8); open({str(flag)!r}, 'w'); time.sleep(60)"
    )
    fast = script(record_start(log) + "import time; time.sleep(60)")
    sup = supervisor(
        tmp_path,
        service("db", tmp_path, command=slow, ready={"file": str(flag), "interval": 0.1}),
        service("app", tmp_path, command=fast, depends_on=["db"]),
    )
    await sup.open()
    try:
        await eventually(lambda: [s.state for s in sup.status()] == ["ready", "ready"], timeout=10)
        await eventually(lambda: len(runs(log)) == 2)
        (_db_start, db_pid), (app_start, app_pid) = runs(log)
        assert flag.stat().st_mtime <= app_start
        assert db_pid == sup.status("db")[0].pid
        assert app_pid == sup.status("app")[0].pid
    finally:
        await sup.close()
    assert [s.state for s in sup.status()] == ["stopped", "stopped"]
    assert wait_gone([db_pid, app_pid]) == []


async def test_a_dependency_that_dies_takes_its_dependents_down_and_back(tmp_path: Path) -> None:
    sup = supervisor(
        tmp_path,
        service("db", tmp_path, command=SLEEP, backoff={"initial": 0.2, "jitter": 0}),
        service("app", tmp_path, command=SLEEP, depends_on=["db"]),
    )
    await sup.open()
    try:
        await eventually(lambda: all(s.state == "ready" for s in sup.status()))
        db_pid, app_pid = (s.pid for s in sup.status())
        assert db_pid
        assert app_pid
        os.kill(db_pid, signal.SIGKILL)
        await eventually(lambda: not alive(app_pid), timeout=10)
        await eventually(lambda: all(s.state == "ready" for s in sup.status()), timeout=10)
        new_db, new_app = (s.pid for s in sup.status())
        assert new_db != db_pid
        assert new_app != app_pid
        assert sup.status("db")[0].restarts == 1
    finally:
        await sup.close()


@pytest.mark.slow
async def test_a_crash_loop_backs_off_and_resets_after_a_healthy_run(tmp_path: Path) -> None:
    """Runs that exit at once are started again after growing intervals; a run that
    stays up `healthy_after` seconds resets the interval to the first one."""
    log = tmp_path / "starts"
    healthy = tmp_path / "healthy"
    # the fifth run stays up a while (1.2 s > healthy_after), the others crash at once
    code = record_start(log) + (
        f"import sys,time,pathlib\n"
        f"n=len(pathlib.Path({str(log)!r}).read_text().splitlines())\n"
        f"if n==5: time.sleep(1.2)\n"
        f"sys.exit(3)\n"
    )
    sup = supervisor(
        tmp_path,
        service(
            "crashy",
            tmp_path,
            command=script(code),
            # steps far apart beside a Python start-up's time (a loaded machine)
            backoff={"initial": 0.25, "max": 5, "jitter": 0},
            healthy_after=1.0,
        ),
    )
    del healthy
    await sup.open()
    try:
        await eventually(lambda: len(runs(log)) >= 7, timeout=20)
    finally:
        await sup.close()
    starts = [t for t, _ in runs(log)]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # gaps 0..3 follow crashes with backoff 0.25, 0.5, 1, 2: growing
    assert gaps[0] < gaps[1] < gaps[2] < gaps[3]
    # the fifth run was healthy: the next start comes after the first interval again
    # (the run itself lasted 1.2 s), so gap 5 (after a crash following a reset) is short
    assert gaps[5] < gaps[3]
    status = sup.status("crashy")[0]
    assert status.last_exit_code in (3, -15)
    assert status.restarts >= 6


async def test_restart_no_stays_failed_and_start_reports_it(tmp_path: Path) -> None:
    """It exits before its readiness probe passes: start() says it failed."""
    code = script("raise SystemExit(2)")
    sup = supervisor(tmp_path, service("once", tmp_path, command=code, restart="no", ready={"log": "up"}))
    await sup.open()
    try:
        await eventually(lambda: sup.status("once")[0].state == "failed")
        with pytest.raises(ServiceError) as caught:
            await asyncio.wait_for(sup.start("once"), 10)
        assert caught.value.code == "EXECUTION_FAILED"
        assert sup.status("once")[0].last_exit_code == 2
        with pytest.raises(ServiceError) as unknown:
            sup.status("nope")
        assert unknown.value.code == "UNKNOWN_SERVICE"
    finally:
        await sup.close()


async def test_stop_and_start_on_request(tmp_path: Path) -> None:
    sup = supervisor(
        tmp_path,
        service("db", tmp_path, command=SLEEP),
        service("app", tmp_path, command=SLEEP, depends_on=["db"], autostart=False),
    )
    await sup.open()
    try:
        await eventually(lambda: sup.status("db")[0].state == "ready")
        assert sup.status("app")[0].state == "stopped"
        status = await asyncio.wait_for(sup.start("app"), 10)
        assert status.state == "ready"
        assert status.pid
        with pytest.raises(ServiceError) as again:
            await sup.start("app")
        assert again.value.code == "ALREADY_RUNNING"
        app_pid = status.pid
        db_status = await asyncio.wait_for(sup.stop("db"), 20)  # stops app first
        assert db_status.state == "stopped"
        assert sup.status("app")[0].state == "stopped"
        assert wait_gone([app_pid]) == []
        with pytest.raises(ServiceError) as not_running:
            await sup.stop("db")
        assert not_running.value.code == "NOT_RUNNING"
        restarted = await asyncio.wait_for(sup.start("app"), 10)  # starts db first
        assert restarted.state == "ready"
        assert sup.status("db")[0].state == "ready"
    finally:
        await sup.close()
