"""A real `wireway run` with services: SIGTERM stops everything in reverse order and
leaves nothing behind; after a SIGKILL, the next run adopts what is still running."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
from services_support import (
    alive,
    isolated_run_dir,
    listener,
    service_code,
    services_of,
    stubborn_grandchild,
    wait_gone,
    wait_until,
    wireway_run,
    write_deployment,
)

from conftest import free_port

__all__ = ["isolated_run_dir"]


def chain(tmp: Path, port: int) -> dict[str, object]:
    return {
        "base": {
            "command": service_code("base", tmp, listener(port)),
            "ready": {"tcp": f"127.0.0.1:{port}", "interval": 0.1},
        },
        "mid": {
            "command": service_code("mid", tmp, stubborn_grandchild(tmp / "grandchild")),
            "depends_on": ["base"],
            "stop_timeout": 1,
        },
        "top": {"command": service_code("top", tmp), "depends_on": ["mid"]},
    }


def all_ready(port: int) -> bool:
    services = services_of(port)
    return bool(services) and all(s["state"] == "ready" for s in services.values())


def test_sigterm_stops_every_service_in_reverse_order_and_leaves_no_process(tmp_path: Path) -> None:
    port, service_port = free_port(), free_port()
    patterns = write_deployment(tmp_path, chain(tmp_path, service_port))
    with wireway_run(tmp_path, patterns, port) as proc:
        wait_until(lambda: all_ready(port) and (tmp_path / "grandchild").exists())
        tree = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        grandchild = int((tmp_path / "grandchild").read_text())
        assert grandchild in tree
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert (tmp_path / "stops").read_text().split() == ["top", "mid", "base"]
    assert wait_gone(tree) == []
    assert not list((tmp_path / "run").rglob("*.pid"))


def test_after_a_sigkill_the_next_run_adopts_the_services_and_starts_none_twice(tmp_path: Path) -> None:
    port, service_port = free_port(), free_port()
    patterns = write_deployment(tmp_path, chain(tmp_path, service_port))
    with wireway_run(tmp_path, patterns, port) as first:
        wait_until(lambda: all_ready(port))
        pids = {name: s["pid"] for name, s in services_of(port).items()}
        first.kill()
        first.wait(10)
    assert all(alive(pid) for pid in pids.values())
    with wireway_run(tmp_path, patterns, port) as second:
        wait_until(lambda: all_ready(port))
        assert {name: s["pid"] for name, s in services_of(port).items()} == pids
        started = (tmp_path / "starts").read_text().split("\n")
        assert sorted(line.split()[0] for line in started if line) == ["base", "mid", "top"]
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    grandchild = int((tmp_path / "grandchild").read_text())
    assert wait_gone([*pids.values(), grandchild]) == []
    assert (tmp_path / "stops").read_text().split() == ["top", "mid", "base"]


def test_a_second_wireway_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    """The data directory's lock (flock, released by the kernel when its holder dies):
    a second instance says why and exits 1, and starts no service twice."""
    port, service_port = free_port(), free_port()
    patterns = write_deployment(tmp_path, chain(tmp_path, service_port))
    with wireway_run(tmp_path, patterns, port) as first:
        wait_until(lambda: all_ready(port))
        with wireway_run(tmp_path, patterns, free_port()) as second:
            assert second.wait(30) == 1
        log = max(tmp_path.glob("run-*.log"), key=lambda p: p.stat().st_mtime_ns)
        assert "another wireway instance is using" in log.read_text()
        assert first.poll() is None
        started = [line for line in (tmp_path / "starts").read_text().split("\n") if line]
        assert sorted(line.split()[0] for line in started) == ["base", "mid", "top"]
        first.kill()  # SIGKILL: the lock goes with it, the next run takes it (and adopts)
        first.wait(10)
    with wireway_run(tmp_path, patterns, port) as third:
        wait_until(lambda: all_ready(port))
        third.send_signal(signal.SIGTERM)
        assert third.wait(30) == 0
