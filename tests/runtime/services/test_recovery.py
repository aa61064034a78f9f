"""Recovery keyed by a refused port backs off step by step; a restarted service is ready
on a line of its own run only; a crash loop never gives up and says when it tries
again; /metrics shows each service's state, start time and last exit code."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from pathlib import Path

from services_support import isolated_run_dir, record_start, runs, script, service, supervisor

from conftest import free_port
from support import eventually
from wireway.observability.metrics import render

__all__ = ["isolated_run_dir"]


async def test_recoveries_of_a_port_that_keeps_refusing_wait_a_growing_step(tmp_path: Path) -> None:
    """gpsd says it is up but its port never opens: every check of `client` is refused.
    gpsd is restarted once per step of its backoff (0.3, then 0.6, 1.2, 2.4 s), not
    once per refused check, and the steps grow."""
    log = tmp_path / "starts"
    port = free_port()
    gpsd = script(record_start(log) + "import time\nprint('up', flush=True)\ntime.sleep(60)")
    sup = supervisor(
        tmp_path,
        service(
            "gpsd",
            tmp_path,
            command=gpsd,
            ready={"log": "^up$", "interval": 0.05},
            backoff={"initial": 0.3, "max": 10, "jitter": 0},
        ),
        service(
            "client",
            tmp_path,
            command=script("import time; time.sleep(60)"),
            live={"tcp": f"127.0.0.1:{port}", "interval": 0.05, "failures": 100000},
            on_failure={"refused": "restart gpsd"},
        ),
    )
    await sup.open()
    try:
        await eventually(lambda: len(runs(log)) >= 4, timeout=20)
    finally:
        await sup.close()
    starts = [t for t, _ in runs(log)]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # the first recovery comes at once; the next ones wait 0.6 then 1.2 s at least (the
    # starts are stamped by the started processes: their start-up time, which varies on
    # a loaded machine, is allowed for)
    assert gaps[1] >= 0.6 - 0.3, gaps
    assert gaps[2] >= 1.2 - 0.3, gaps
    assert gaps[2] > gaps[1], gaps
    assert sup.status("gpsd")[0].restarts == len(starts) - 1


async def test_a_restarted_service_is_ready_on_a_line_of_its_own_run(tmp_path: Path) -> None:
    """The log still holds the first run's `up`: the second run is ready only once it
    wrote its own (after `go` exists)."""
    go, log = tmp_path / "go", tmp_path / "starts"
    code = record_start(log) + (
        "import os, time, pathlib\n"
        f"if len(pathlib.Path({str(log)!r}).read_text().splitlines()) > 1:\n"
        f"    while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    sup = supervisor(
        tmp_path, service("svc", tmp_path, command=script(code), ready={"log": "^up$", "interval": 0.05})
    )
    await sup.open()
    try:
        await eventually(lambda: sup.status("svc")[0].state == "ready")
        restart = asyncio.ensure_future(sup.restart("svc"))
        await eventually(lambda: len(runs(log)) == 2)
        await asyncio.sleep(0.5)  # it has had time to read the old line, were it to
        assert sup.status("svc")[0].state == "starting"
        assert not restart.done()
        go.touch()
        status = await asyncio.wait_for(restart, 10)
        assert status.state == "ready"
    finally:
        await sup.close()


async def test_a_crash_loop_never_gives_up_and_says_when_it_tries_again(tmp_path: Path) -> None:
    log = tmp_path / "starts"
    sup = supervisor(
        tmp_path,
        service(
            "crashy",
            tmp_path,
            command=script(record_start(log) + "raise SystemExit(4)"),
            backoff={"initial": 0.05, "max": 0.2, "jitter": 0},
        ),
    )
    await sup.open()
    try:
        await eventually(lambda: len(runs(log)) >= 8, timeout=30)
        await eventually(lambda: sup.status("crashy")[0].state == "backoff", timeout=5)
        status = sup.status("crashy")[0]
        assert status.next_start_in is not None
        assert 0 <= status.next_start_in <= 0.2
        assert status.last_exit_code == 4
        assert status.restarts >= 7
        await eventually(lambda: len(runs(log)) >= 10, timeout=30)  # still trying at the maximum
    finally:
        await sup.close()


def sample(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_show_state_start_time_and_last_exit_code(tmp_path: Path) -> None:
    name = f"m{uuid.uuid4().hex[:8]}"  # the registry is the process's: a name of its own
    sup = supervisor(tmp_path, service(name, tmp_path, command=script("import time; time.sleep(60)")))
    await sup.open()
    try:
        await eventually(lambda: sup.status(name)[0].state == "ready")
        text = render().decode()
        label = f'{{service="{name}",wireway_service_state="ready"}}'
        assert sample(text, f"wireway_service_state{label}") == 1.0
        started = sample(text, f'wireway_service_start_time_seconds{{service="{name}"}}')
        assert started == sup.status(name)[0].started_at
        assert sample(text, f'wireway_service_ready{{service="{name}"}}') == 1.0
        await asyncio.wait_for(sup.stop(name), 10)
        text = render().decode()
        assert (
            sample(text, f'wireway_service_state{{service="{name}",wireway_service_state="stopped"}}') == 1.0
        )
        assert sample(text, f'wireway_service_state{{service="{name}",wireway_service_state="ready"}}') == 0.0
        assert sample(text, f'wireway_service_start_time_seconds{{service="{name}"}}') == 0.0
        assert sample(text, f'wireway_service_last_exit_code{{service="{name}"}}') == -15.0
    finally:
        await sup.close()
