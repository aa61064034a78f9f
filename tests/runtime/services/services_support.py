"""Building supervisors of real processes for the tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
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


def service_code(name: str, folder: Path, extra: str = "") -> list[str]:
    """A service that records its start (`starts`) and, on SIGTERM, its stop (`stops`)."""
    starts, stops = str(folder / "starts"), str(folder / "stops")
    code = (
        "import os, signal, sys, time\n"
        f"open({starts!r}, 'a').write({name!r} + ' ' + str(os.getpid()) + '\\n')\n"
        "def bye(*_):\n"
        f"    open({stops!r}, 'a').write({name!r} + '\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        f"{extra}\n"
        "while True:\n"
        "    time.sleep(0.1)\n"
    )
    return script(code)


def listener(port: int) -> str:
    return (
        "import socket\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {port}))\n"
        "s.listen()\n"
    )


def stubborn_grandchild(pid_file: Path) -> str:
    """Python that starts a grandchild ignoring SIGTERM and writes its PID to `pid_file`."""
    inner = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    return (
        "import subprocess\n"
        f"g = subprocess.Popen([sys.executable, '-c', {inner!r}])\n"
        f"open({str(pid_file)!r}, 'w').write(str(g.pid))\n"
    )


def write_deployment(folder: Path, services: dict[str, Any]) -> Path:
    """A pattern folder: one small pattern and a services.yaml (JSON is YAML)."""
    patterns = folder / "patterns"
    patterns.mkdir()
    (patterns / "p.yaml").write_text(
        "pattern: {name: p}\n"
        "interfaces:\n"
        "  input: [{type: http, address: /in}]\n"
        "  output: [{type: stdout}]\n"
        "settings: {timeout: 2}\n"
    )
    (patterns / "services.yaml").write_text(json.dumps({"services": services}, indent=1))
    return patterns


@contextlib.contextmanager
def wireway_run(folder: Path, patterns: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`wireway run` of the folder (its PID files under folder/run), killed at the end if
    still running."""
    env = {**os.environ, "WIREWAY_RUN_DIR": str(folder / "run")}
    env.pop("WIREWAY_CONFIG", None)
    with open(folder / f"run-{time.monotonic_ns()}.log", "wb") as log:
        proc = subprocess.Popen(
            [
                PY,
                "-m",
                "wireway",
                "run",
                str(patterns),
                "--http",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(folder / "data"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def services_of(port: int) -> dict[str, dict[str, Any]]:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/services", timeout=2, trust_env=False)
        return {s["name"]: s for s in answer.json()["services"]}
    except (httpx.HTTPError, ValueError, KeyError):
        return {}


def wait_until(check: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {seconds}s")
        time.sleep(0.1)
