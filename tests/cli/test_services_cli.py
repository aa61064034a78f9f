"""`wireway check` of a services: section, and `wireway services` against a running instance."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from conftest import free_port, wireway

PATTERN = (
    "pattern: {name: p}\n"
    "interfaces:\n"
    "  input: [{type: http, address: /in}]\n"
    "  output: [{type: stdout}]\n"
    "settings: {timeout: 2}\n"
)
SLEEPER = [sys.executable, "-c", "import time\nprint('hello from the service', flush=True)\ntime.sleep(60)"]


def test_check_names_a_cycle_and_an_unknown_dependency_at_their_line(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PATTERN)
    (tmp_path / "services.yaml").write_text(
        "services:\n"
        "  a:\n"
        "    command: [sleep, '1']\n"
        "    depends_on: [b]\n"
        "  b:\n"
        "    command: [sleep, '1']\n"
        "    depends_on: [a]\n"
        "  c:\n"
        "    command: [sleep, '1']\n"
        "    depends_on: [nope]\n"
        "  d:\n"
        "    command: [sleep, '1']\n"
        "    ready: {tcp: '127.0.0.1:2947', http: 'http://127.0.0.1/'}\n"
        "    restrat: always\n"
        "  e: {pattern: p, ready: {input: p.nope}}\n"
    )
    result = wireway("check", str(tmp_path))
    assert result.returncode == 1
    errors = result.stderr
    where = f"{tmp_path / 'services.yaml'}"
    assert f"{where}:4 services.a.depends_on: dependency cycle: a -> b -> a" in errors or (
        f"{where}:7 services.b.depends_on: dependency cycle" in errors
    )
    assert f"{where}:10 services.c.depends_on: unknown service `nope`" in errors
    assert f"{where}:13 services.d.ready: expected exactly one of" in errors
    assert f"{where}:14 services.d.restrat: unknown key" in errors
    assert f"{where}:15 services.e.ready: no input `p.nope`" in errors


def test_check_accepts_services_in_a_pattern_file(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        PATTERN + "services:\n  s: {command: [sleep, '1'], restart: always, backoff: {initial: 0.5}}\n"
        "  q: {pattern: p, depends_on: [s], ready: {input: p.http}}\n"
    )
    result = wireway("check", str(tmp_path / "p.yaml"))
    assert result.returncode == 0, result.stderr
    assert "ok services, in start order: s, q" in result.stdout


@contextmanager
def running(tmp: Path) -> Iterator[str]:
    patterns = tmp / "patterns"
    patterns.mkdir()
    (patterns / "p.yaml").write_text(PATTERN)
    services = {"db": {"command": SLEEPER}, "app": {"command": SLEEPER, "depends_on": ["db"]}}
    (patterns / "services.yaml").write_text(json.dumps({"services": services}))
    port = free_port()
    env = {**os.environ, "WIREWAY_RUN_DIR": str(tmp / "run")}
    env.pop("WIREWAY_CONFIG", None)
    data = ["--data-dir", str(tmp / "data")]
    with open(tmp / "run.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wireway", "run", str(patterns), "--http", f"127.0.0.1:{port}", *data],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/status", timeout=1, trust_env=False)
                    if all(s["state"] == "ready" for s in answer.json()["services"]):
                        break
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                time.sleep(0.1)
            yield f"127.0.0.1:{port}"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_services_commands_against_a_running_instance(tmp_path: Path) -> None:
    wide = {"COLUMNS": "200"}
    with running(tmp_path) as http:
        listed = wireway("services", "list", "--http", http, env=wide)
        assert listed.returncode == 0, listed.stderr
        assert "db" in listed.stdout
        assert "ready" in listed.stdout
        stopped = wireway("services", "stop", "db", "--http", http)
        assert stopped.returncode == 0, stopped.stderr
        assert "db: stopped" in stopped.stdout
        status = httpx.get(f"http://{http}/status", timeout=5, trust_env=False).json()
        assert {s["name"]: s["state"] for s in status["services"]} == {"db": "stopped", "app": "stopped"}
        again = wireway("services", "stop", "db", "--http", http)
        assert again.returncode == 1
        assert "NOT_RUNNING" in again.stderr
        started = wireway("services", "start", "app", "--http", http)
        assert started.returncode == 0, started.stderr
        assert "app: ready" in started.stdout
        restarted = wireway("services", "restart", "db", "--http", http)
        assert restarted.returncode == 0, restarted.stderr
        logs = wireway("services", "logs", "db", "--http", http)
        assert logs.stdout.count("hello from the service") >= 2
        follow = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wireway",
                "services",
                "logs",
                "app",
                "-n",
                "0",
                "--follow",
                "--http",
                http,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(1.0)  # following from the end now
            wireway("services", "restart", "app", "--http", http)
            assert follow.stdout is not None
            ready, _, _ = select.select([follow.stdout], [], [], 15)
            assert ready, "nothing followed"
            assert b"hello from the service" in follow.stdout.readline()  # the new run's
        finally:
            follow.send_signal(signal.SIGINT)
            follow.wait(10)
        unknown = wireway("services", "start", "nope", "--http", http)
        assert unknown.returncode == 1
        assert "UNKNOWN_SERVICE" in unknown.stderr
        metrics = httpx.get(f"http://{http}/metrics", timeout=5, trust_env=False).text
        assert 'wireway_service_ready{service="db"} 1.0' in metrics
        assert 'wireway_service_restarts_total{service="db"} 1.0' in metrics
