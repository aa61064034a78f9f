"""Options of one service with real processes: `cwd` (relative to its file),
`stop_signal`, and a `file` probe with `grows`."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from services_support import isolated_run_dir, record_start, runs, script, service, supervisor, wait_gone

from support import eventually

__all__ = ["isolated_run_dir"]


async def test_cwd_is_relative_to_the_services_file(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    code = script("import os, time\nopen('here', 'w').write(os.getcwd())\ntime.sleep(60)")
    sup = supervisor(
        tmp_path, service("svc", tmp_path, command=code, cwd="work", ready={"file": "work/here"})
    )
    await sup.open()
    try:
        await eventually(lambda: sup.status("svc")[0].state == "ready")
        assert (tmp_path / "work" / "here").read_text() == str(tmp_path / "work")
    finally:
        await sup.close()


async def test_stop_signal_is_what_stops_it(tmp_path: Path) -> None:
    """It ignores SIGTERM and exits 3 on SIGINT: stopped by its `stop_signal`, not by
    the SIGKILL that would follow `stop_timeout`."""
    code = script(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(3))\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    sup = supervisor(
        tmp_path,
        service("svc", tmp_path, command=code, stop_signal="SIGINT", stop_timeout=30, ready={"log": "^up$"}),
    )
    await sup.open()
    try:
        await eventually(lambda: sup.status("svc")[0].state == "ready")
        status = await asyncio.wait_for(sup.stop("svc"), 30)
        assert status.state == "stopped"
        assert status.last_exit_code == 3
    finally:
        await sup.close()


async def test_a_file_that_stops_growing_fails_liveness(tmp_path: Path) -> None:
    """`live: {file, grows: true}`: the first run writes a line every 0.05 s for a
    while, then stops writing (a stuck writer): it is restarted."""
    out, runs = tmp_path / "out", tmp_path / "runs"
    code = script(
        "import time\n"
        f"open({str(runs)!r}, 'a').write('run\\n')\n"
        "for _ in range(20):\n"
        f"    open({str(out)!r}, 'a').write('x\\n'); time.sleep(0.05)\n"
        "time.sleep(60)\n"
    )
    live = {"file": str(out), "grows": True, "interval": 0.2, "failures": 2}
    sup = supervisor(
        tmp_path,
        service("svc", tmp_path, command=code, live=live, backoff={"initial": 0.1, "jitter": 0}),
    )
    await sup.open()
    try:
        await eventually(lambda: sup.status("svc")[0].restarts >= 1, timeout=20)
        await eventually(lambda: runs.read_text().count("run") >= 2)
    finally:
        await sup.close()


async def test_a_process_that_left_the_group_is_stopped_too(tmp_path: Path) -> None:
    """The service starts a daemon-like grandchild: its own session (out of the
    service's process group), deaf to SIGTERM. Stopping the service stops it too (it
    carries the run's mark), and no other process is touched."""
    pid_file = tmp_path / "escaped"
    inner = (
        "import os, signal, time\n"
        "os.setsid()\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(120)\n"
    )
    code = script(
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {inner!r}])\ntime.sleep(60)"
    )
    bystander = subprocess.Popen(script("import time; time.sleep(60)"))  # noqa: ASYNC220
    sup = supervisor(tmp_path, service("svc", tmp_path, command=code, stop_timeout=1))
    await sup.open()
    try:
        await eventually(lambda: pid_file.exists() and pid_file.read_text() != "")
        escaped = int(pid_file.read_text())
        leader = sup.status("svc")[0].pid
        assert leader is not None
        assert os.getpgid(escaped) != os.getpgid(leader)
        status = await asyncio.wait_for(sup.stop("svc"), 20)
        assert status.state == "stopped"
        assert wait_gone([escaped, leader]) == []
        assert bystander.poll() is None
    finally:
        await sup.close()
        bystander.kill()
        bystander.wait()


async def test_restart_always_runs_a_clean_exit_again_on_failure_does_not(tmp_path: Path) -> None:
    always, once = tmp_path / "always", tmp_path / "once"
    sup = supervisor(
        tmp_path,
        service(
            "always",
            tmp_path,
            command=script(record_start(always)),
            restart="always",
            backoff={"initial": 0.05, "max": 0.1, "jitter": 0},
        ),
        service("once", tmp_path, command=script(record_start(once)), restart="on-failure"),
    )
    await sup.open()
    try:
        await eventually(lambda: len(runs(always)) >= 3, timeout=20)
        await eventually(lambda: sup.status("once")[0].state == "stopped")
        assert sup.status("once")[0].last_exit_code == 0
        assert len(runs(once)) == 1
        assert sup.status("always")[0].last_exit_code == 0
    finally:
        await sup.close()
