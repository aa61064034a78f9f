"""Building supervisors of real processes for the tests."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

from wireway.config.services import Service, ServiceOptions
from wireway.runtime.services import Supervisor

PY = sys.executable


def service(name: str, tmp: Path, **options: Any) -> Service:
    """A service from options given as YAML would give them."""
    opts = msgspec.convert(options, ServiceOptions, strict=False)
    return Service(name, opts, str(tmp / "services.yaml"), 1)


def script(code: str) -> list[str]:
    return [PY, "-c", code]


def supervisor(tmp: Path, *services: Service) -> Supervisor:
    return Supervisor(list(services), tmp / "data")


def record_start(path: Path) -> str:
    """Python that appends its start time and pid to `path`, for scripts that record runs."""
    return f"import os,time;open({str(path)!r},'a').write(f'{{time.time()}} {{os.getpid()}}\\n')\n"


def runs(path: Path) -> list[tuple[float, int]]:
    if not path.exists():
        return []
    return [(float(a), int(b)) for a, b in (line.split() for line in path.read_text().splitlines())]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@pytest.fixture(autouse=True)
def isolated_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PID files and leases of each test in its own folder (not the host's /run/wireway);
    autouse in every module that imports it."""
    monkeypatch.setenv("WIREWAY_RUN_DIR", str(tmp_path / "run"))
