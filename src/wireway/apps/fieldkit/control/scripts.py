"""Scripts as the kit's page knows them (`kismet`, `gps`, `both`), over the services of
the deployment: starting, stopping, and their status with the figures of `psutil`."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from wireway.apps.fieldkit.control.options import INTERFACE, ControlOptions
from wireway.supervision import ServiceControl, ServiceError, ServiceStatus

UP = ("waiting", "starting", "ready", "backoff", "stopping")  # a process runs or will again
METACHARACTERS = set(";&|`$<>(){}[]*?!~'\"\\\n\r\t \x00")


class ControlError(Exception):
    """An answer other than 200: its status, code (the Node service's), message and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(time.time()) or ""


def check_options(options: Any, settings: ControlOptions) -> dict[str, str]:
    """The environment a start gets from `run-script`'s options, or ControlError 400:
    only allowed keys, an interface name, a config file under `config_dir`."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ControlError(400, "VALIDATION_ERROR", "options must be an object", {"options": options})
    unknown = sorted(set(options) - {"interface", "config"})
    if unknown:
        raise ControlError(
            400,
            "VALIDATION_ERROR",
            "unknown options",
            {"allowed": ["interface", "config"], "unknown": unknown},
        )
    env: dict[str, str] = {}
    interface = options.get("interface")
    if interface is not None:
        # a leading `-` would read as an option of the program; `.` and `..` are no
        # interface's name (the kernel refuses them)
        if (
            not isinstance(interface, str)
            or not INTERFACE.fullmatch(interface)
            or interface.startswith("-")
            or interface in (".", "..")
        ):
            raise ControlError(
                400, "VALIDATION_ERROR", "Interface name is not valid", "expected ^[a-zA-Z0-9_.-]{1,15}$"
            )
        env[settings.interface_env] = interface
    config = options.get("config")
    if config is not None:
        env[settings.config_env] = str(confined_config(config, settings.config_dir))
    return env


def confined_config(value: Any, folder: str) -> Path:
    """A config file under `folder` (symbolic links and `..` resolved), else ControlError 400."""
    if not isinstance(value, str) or not value or len(value) > 255 or METACHARACTERS & set(value):
        raise ControlError(400, "VALIDATION_ERROR", "Config path is not valid", "a plain file path")
    root = Path(folder).resolve()
    path = Path(value) if os.path.isabs(value) else root / value
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError):  # ValueError: a NUL byte
        resolved = None
    if resolved is None or not resolved.is_relative_to(root):
        raise ControlError(400, "VALIDATION_ERROR", "Config path is outside the allowed folder", str(root))
    if not resolved.is_file():
        raise ControlError(400, "VALIDATION_ERROR", "Config file does not exist", str(resolved))
    return resolved


class Scripts:
    """The scripts of `options` over the supervisor `services`."""

    def __init__(self, options: ControlOptions, services: ServiceControl | None) -> None:
        self.options = options
        self.services = services
        self.processes: dict[int, psutil.Process] = {}  # kept: cpu_percent counts from the last call

    def control(self) -> ServiceControl:
        if self.services is None:
            raise ControlError(500, "EXECUTION_FAILED", "no services are declared", "add a services: section")
        return self.services

    def script(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.options.script_names():
            raise ControlError(
                400,
                "INVALID_SCRIPT",
                "Invalid script type specified",
                f"Valid options are: {', '.join(self.options.script_names())}",
            )
        return value

    def states(self, script: str) -> list[ServiceStatus]:
        control = self.control()
        found: list[ServiceStatus] = []
        for name in self.options.services_of(script):
            try:
                found += control.status(name)
            except ServiceError:
                continue  # a script naming a service the deployment lacks: not running
        return found

    async def run(self, script: str, env: Mapping[str, str]) -> dict[str, Any]:
        control = self.control()
        names = self.options.services_of(script)
        before = {s.name: s for s in self.states(script)}
        if names and all(n in before and before[n].state in UP for n in names):
            main = before[names[0]]
            raise ControlError(
                409, "ALREADY_RUNNING", f"Script {script} is already running", f"PID: {main.pid}"
            )
        started: dict[str, int | None] = {}
        for name in names:
            if name in before and before[name].state in UP:
                continue
            try:
                start = control.start(name, env=dict(env)) if env else control.start(name)
                # bounded: a start never ready would hold the API's lock (no stop could run)
                status = await asyncio.wait_for(start, self.options.start_timeout)
            except TimeoutError:
                detail = f"{name}: not ready after {self.options.start_timeout:g} s (it goes on starting)"
                raise ControlError(500, "EXECUTION_FAILED", "Failed to start script", detail) from None
            except ServiceError as exc:
                if exc.code == "ALREADY_RUNNING":
                    continue
                raise ControlError(
                    500, "EXECUTION_FAILED", "Failed to start script", f"{name}: {exc.message}"
                ) from None
            if status.state not in UP:
                detail = f"{name}: {status.state} (exit code {status.last_exit_code})"
                raise ControlError(500, "EXECUTION_FAILED", "Failed to start script", detail)
            started[name] = status.pid
        pid = next((s.pid for s in self.states(script) if s.pid is not None), None)
        return {"pid": pid, "services": started}

    async def stop(self, script: str, force: bool) -> dict[str, Any]:
        control = self.control()
        running = [s for s in self.states(script) if s.state in UP]
        if not running:
            raise ControlError(404, "NOT_RUNNING", f"Script {script} is not running", "No PID file found")
        pid = running[0].pid
        for name in reversed(self.options.services_of(script)):
            try:
                await control.stop(name, force=force)
            except ServiceError as exc:
                if exc.code in ("NOT_RUNNING", "UNKNOWN_SERVICE"):
                    continue  # stopped with what it depends on, or not declared
                raise ControlError(
                    500, "STOP_FAILED", "Failed to stop script", f"{name}: {exc.message}"
                ) from None
        return {"pid": pid}

    # ----- status -----------------------------------------------------------------------
    def status(self, script: str) -> dict[str, Any]:
        states = self.states(script)
        main = next((s for s in states if s.state in UP), None)
        services = {
            s.name: {"state": s.state, "pid": s.pid, "ready": s.ready, "restarts": s.restarts} for s in states
        }
        if main is None:
            last = max(states, key=lambda s: s.last_run_time or 0.0, default=None)
            return {
                "running": False,
                "pid": None,
                "lastRunTime": iso(last.last_run_time) if last else None,
                "lastExitCode": last.last_exit_code if last else None,
                "services": services,
            }
        rss, vms, cpu = self.figures([s.pid for s in states if s.pid is not None and s.state in UP])
        started = main.started_at
        return {
            "running": True,
            "pid": main.pid,
            "uptime": int(time.time() - started) if started else None,
            "startTime": iso(started),
            "memory": {"rss": rss, "vms": vms},
            "cpu": cpu,
            "services": services,
        }

    def every_status(self) -> dict[str, Any]:
        return {name: self.status(name) for name in self.options.scripts}

    def figures(self, pids: list[int]) -> tuple[int, int, float]:
        """Memory (bytes) and CPU (%) of the processes and their children."""
        rss = vms = 0
        cpu = 0.0
        seen: set[int] = set()
        for pid in pids:
            try:
                top = self.process(pid)
                tree = [top, *top.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in tree:
                if proc.pid in seen:
                    continue
                seen.add(proc.pid)
                try:
                    kept = self.process(proc.pid)
                    mem = kept.memory_info()
                    rss, vms = rss + mem.rss, vms + mem.vms
                    cpu += kept.cpu_percent(interval=None)
                except psutil.Error:
                    continue
        for gone in set(self.processes) - seen:
            self.processes.pop(gone, None)
        return rss, vms, round(cpu, 1)

    def process(self, pid: int) -> psutil.Process:
        proc = self.processes.get(pid)
        if proc is None or not proc.is_running():
            proc = self.processes[pid] = psutil.Process(pid)
        return proc
