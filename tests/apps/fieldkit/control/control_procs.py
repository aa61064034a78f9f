"""A small real supervisor for the control API's tests (the engine's lives in
runtime/services/): real processes in their own process groups, started after what
they depend on is ready (a TCP port accepting, or a line of output), stopped
dependents first with SIGTERM (SIGKILL after a grace, or at once with `force`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wireway.supervision import ServiceError, ServiceStatus, State

UP = ("waiting", "starting", "ready", "backoff", "stopping")


@dataclass
class Spec:
    argv: list[str]
    depends_on: list[str] = field(default_factory=list)
    ready_port: int | None = None
    ready_log: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Unit:
    name: str
    spec: Spec
    state: State = "stopped"
    proc: asyncio.subprocess.Process | None = None
    started_at: float | None = None
    last_exit_code: int | None = None
    last_run_time: float | None = None
    stopping: bool = False
    watcher: asyncio.Task[None] | None = None


class Procs:
    """ServiceControl over real processes; `spawned` counts every process started and
    `envs` records the extra environment of each start."""

    def __init__(self, specs: dict[str, Spec], logs: Path) -> None:
        self.units = {name: Unit(name, spec) for name, spec in specs.items()}
        self.logs = logs
        self.spawned = 0
        self.envs: list[tuple[str, dict[str, str]]] = []
        self.stuck: set[str] = set()  # services whose stop fails (as one in uninterruptible sleep)
        logs.mkdir(parents=True, exist_ok=True)

    def names(self) -> list[str]:
        return list(self.units)

    def unit(self, name: str) -> Unit:
        if name not in self.units:
            raise ServiceError("UNKNOWN_SERVICE", f"no service {name}")
        return self.units[name]

    def status(self, name: str | None = None) -> list[ServiceStatus]:
        units = [self.unit(name)] if name is not None else list(self.units.values())
        return [
            ServiceStatus(
                name=u.name,
                state=u.state,
                pid=u.proc.pid if u.proc is not None and u.state in UP else None,
                started_at=u.started_at if u.state in UP else None,
                ready=u.state == "ready",
                last_exit_code=u.last_exit_code,
                last_run_time=u.last_run_time,
                depends_on=tuple(u.spec.depends_on),
            )
            for u in units
        ]

    def log_path(self, name: str) -> Path:
        return self.logs / f"{self.unit(name).name}.log"

    async def start(self, name: str, env: Mapping[str, str] | None = None) -> ServiceStatus:
        unit = self.unit(name)
        if unit.state in UP:
            raise ServiceError("ALREADY_RUNNING", f"{name} is running (PID {unit.proc and unit.proc.pid})")
        for dep in unit.spec.depends_on:
            if self.unit(dep).state not in UP:
                await self.start(dep)
        self.envs.append((name, dict(env or {})))
        environ = {**os.environ, **unit.spec.env, **(env or {})}
        log = self.log_path(name).open("ab")
        try:
            unit.proc = await asyncio.create_subprocess_exec(
                *unit.spec.argv, env=environ, stdout=log, stderr=log, start_new_session=True
            )
        except OSError as exc:
            raise ServiceError("EXECUTION_FAILED", str(exc)) from None
        finally:
            log.close()
        self.spawned += 1
        unit.state, unit.started_at, unit.stopping = "starting", time.time(), False
        unit.watcher = asyncio.create_task(self.watch(unit, unit.proc))
        await self.wait_ready(unit)
        return self.status(name)[0]

    async def wait_ready(self, unit: Unit) -> None:
        deadline = time.monotonic() + 15
        while unit.state == "starting" and time.monotonic() < deadline:
            if await self.probe(unit):
                unit.state = "ready"
                return
            await asyncio.sleep(0.05)

    async def probe(self, unit: Unit) -> bool:
        if unit.spec.ready_port is not None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", unit.spec.ready_port)
            except OSError:
                return False
            writer.close()
            return True
        if unit.spec.ready_log is not None:
            path = self.log_path(unit.name)
            return (
                path.exists() and re.search(unit.spec.ready_log, path.read_text(errors="replace")) is not None
            )
        return True

    async def watch(self, unit: Unit, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        unit.last_exit_code, unit.last_run_time = code, time.time()
        unit.state = "stopped" if unit.stopping else "failed"

    async def stop(self, name: str, force: bool = False) -> ServiceStatus:
        unit = self.unit(name)
        if unit.state not in UP or unit.proc is None:
            raise ServiceError("NOT_RUNNING", f"{name} is not running")
        for other in self.units.values():
            if name in other.spec.depends_on and other.state in UP:
                await self.stop(other.name, force)
        if name in self.stuck:
            raise ServiceError("STOP_FAILED", f"{name} did not exit after SIGKILL")
        unit.stopping, unit.state = True, "stopping"
        group = unit.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
            if force:
                os.killpg(group, signal.SIGKILL)
        try:
            await asyncio.wait_for(asyncio.shield(unit.watcher), 5) if unit.watcher else None
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            if unit.watcher is not None:
                await unit.watcher
        return self.status(name)[0]

    async def restart(self, name: str) -> ServiceStatus:
        with contextlib.suppress(ServiceError):
            await self.stop(name)
        return await self.start(name)

    async def close(self) -> None:
        for unit in reversed(list(self.units.values())):
            if unit.state in UP:
                with contextlib.suppress(ServiceError):
                    await self.stop(unit.name, force=True)
