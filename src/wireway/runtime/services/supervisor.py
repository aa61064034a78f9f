"""The supervisor: starts services in dependency order once what they depend on is
ready, watches them, restarts them with backoff (for ever, at the maximum interval at
worst), and stops them dependents first.

Each wanted service runs one loop (`_run`): wait for its dependencies, take its leases,
start (or adopt) its process, probe until ready, then watch it until it exits, fails
its liveness probe, loses a dependency or is asked to stop. Every state change wakes
every loop, so a dependent notices at once that what it needs went down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from wireway.config.services import Service, start_order
from wireway.observability import logging as log
from wireway.observability.metrics import service_restarted
from wireway.runtime.services import gauges, process
from wireway.runtime.services.files import PidFiles, lease_dir, run_dir
from wireway.runtime.services.leases import LeaseHeld, Leases
from wireway.runtime.services.probes import Prober
from wireway.runtime.services.unit import DOWN, Unit, release_leases, requires, take_leases
from wireway.supervision import ServiceError, ServiceStatus, State

logger = log.get("services")
PatternHook = Callable[[str], Awaitable[None]]  # start or stop a pattern's inputs, by name


class Supervisor:
    """The engine's `ServiceControl` (wireway.supervision)."""

    def __init__(
        self,
        services: list[Service],
        data_dir: Path,
        *,
        start_pattern: PatternHook | None = None,
        stop_pattern: PatternHook | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.seen: set[str] = set()  # wireway inputs that produced a message
        logs = self.data_dir / "services"
        self.units = {s.name: Unit(s, logs / f"{s.name}.log") for s in start_order(services)}
        self.start_pattern = start_pattern
        self.stop_pattern = stop_pattern
        self._change = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.pids = PidFiles(run_dir(data_dir))
        self.leases = Leases(lease_dir(data_dir))
        for unit in self.units.values():
            gauges.show(unit.status())

    # ----- ServiceControl ------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self.units)

    def status(self, name: str | None = None) -> list[ServiceStatus]:
        units = [self._unit(name)] if name is not None else list(self.units.values())
        return [u.status() for u in units]

    async def start(self, name: str, env: Mapping[str, str] | None = None) -> ServiceStatus:
        unit = self._unit(name)
        if unit.wanted and unit.state not in ("failed", "stopped"):
            raise ServiceError("ALREADY_RUNNING", f"{name} is already {unit.state}")
        unit.extra_env = dict(env or {})
        needed = requires(self.units, name)
        for dep in (u for u in self.units.values() if u.name in needed):  # in start order
            if not dep.wanted or dep.state in ("failed", "stopped"):
                self._launch(dep)
        self._launch(unit)
        while True:
            if unit.state == "ready":
                return unit.status()
            if unit.state in ("failed", "stopped", "backoff"):
                code = unit.error_code or "EXECUTION_FAILED"
                why = unit.error or f"{name} exited (code {unit.last_exit_code})"
                raise ServiceError(code, why)
            await self._wait_change(1.0)

    async def stop(self, name: str, force: bool = False) -> ServiceStatus:
        unit = self._unit(name)
        if not unit.busy():
            raise ServiceError("NOT_RUNNING", f"{name} is not running")
        for dep in reversed(list(self.units.values())):
            if name in requires(self.units, dep.name) and dep.busy():
                await self._stop_unit(dep, force)
        await self._stop_unit(unit, force)
        if unit.error_code == "STOP_FAILED":
            raise ServiceError("STOP_FAILED", unit.error)
        return unit.status()

    async def restart(self, name: str) -> ServiceStatus:
        unit = self._unit(name)
        back = [d for d in self.units.values() if name in requires(self.units, d.name) and d.wanted]
        env = unit.extra_env
        if unit.busy():
            await self.stop(name)
        unit.restarts += 1
        service_restarted(name)
        status = await self.start(name, env)
        for dep in back:  # they start once it is ready, as at first
            self._launch(dep)
        return status

    def log_path(self, name: str) -> Path:
        return self._unit(name).log_file

    # ----- lifecycle -----------------------------------------------------------------
    async def open(self) -> None:
        """Adopt (or stop, dependents first) the processes an earlier wireway left
        running, free the leases whose holders are gone (those it stopped too: their
        reset runs now), and start the services that start by themselves."""
        for unit in reversed(list(self.units.values())):
            if unit.opts.pattern is not None:
                continue
            record = self.pids.read(unit.name)
            if record is None:
                continue
            if unit.opts.on_restart == "adopt":
                logger.info("service adopted: still running from before", service=unit.name, pid=record.pid)
                unit.adopt, unit.extra_env = record, dict(record.env)
            else:
                logger.info("service left from before: stopping it", service=unit.name, pid=record.pid)
                left = process.adopt(record.pid, record.created, record.mark)
                await process.stop(left, unit.opts.stop_signal, unit.opts.stop_timeout)
                self.pids.remove(unit.name)
        await asyncio.to_thread(self.leases.reconcile)
        for unit in self.units.values():
            if unit.opts.autostart or unit.adopt is not None:
                self._launch(unit)
        self._spawn(process.rotate_logs([u.log_file for u in self.units.values()]), "rotate")

    async def close(self) -> None:
        """Stop every service, dependents first."""
        for unit in reversed(list(self.units.values())):
            if unit.busy():
                await self._stop_unit(unit, False)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(OSError):  # the run folder under /run/wireway, when empty
            self.pids.folder.rmdir()

    def saw(self, source: str) -> None:
        """A wireway input produced a message (for `ready: {input: ...}`)."""
        if source not in self.seen:
            self.seen.add(source)
            self._changed()

    def report_refused(self, source: str) -> None:
        """Something reported a refused connection: `source` is a service, or an input
        of a pattern run as a service (`<pattern>.<input>`); that service's
        `on_failure.refused` action runs."""
        for unit in self.units.values():
            if source == unit.name or (unit.opts.pattern and source.startswith(unit.opts.pattern + ".")):
                self._refused(unit)

    # ----- the loop of one service ---------------------------------------------------
    async def _guarded(self, unit: Unit) -> None:
        """The loop; a fault of its own leaves the service failed (and stopped), not stuck."""
        try:
            await self._run(unit)
        except Exception as exc:
            logger.exception("service supervision failed", service=unit.name)
            unit.wanted = False
            unit.error_code, unit.error = "EXECUTION_FAILED", f"{unit.name}: {exc}"
            with contextlib.suppress(Exception):
                await self._halt(unit)
            self._set(unit, "failed")

    async def _run(self, unit: Unit) -> None:
        while unit.wanted:
            if unit.adopt is None and not all(self.units[d].state == "ready" for d in unit.opts.depends_on):
                self._set(unit, "waiting")
                await self._wait_change(1.0)
                continue
            try:
                await take_leases(self.leases, unit)
            except (LeaseHeld, ValueError) as exc:
                await release_leases(self.leases, unit)
                if not unit.wanted:  # stopped while waiting for it
                    break
                unit.wanted = False
                held = isinstance(exc, LeaseHeld)
                unit.error_code, unit.error = ("LEASE_HELD" if held else "EXECUTION_FAILED"), str(exc)
                self._set(unit, "failed")
                logger.warning("service cannot start", service=unit.name, error=str(exc))
                return
            try:
                await self._begin(unit)
                outcome = await self._supervise(unit)
            except (OSError, KeyError, ValueError) as exc:  # no such program, user, folder
                unit.error = f"{unit.name} cannot start: {exc}"
                logger.warning("service cannot start", service=unit.name, error=str(exc))
                outcome = "exited"
            await self._halt(unit)
            if outcome == "deps":
                continue
            if outcome != "stop":
                await self._backoff(unit, outcome)
            # a stop ends the loop, unless start() wanted it again meanwhile
        if unit.state not in ("failed",):
            self._set(unit, "stopped")

    async def _begin(self, unit: Unit) -> None:
        unit.started_at = time.time()
        unit.error_code, unit.error = "", ""
        self._set(unit, "starting")
        unit.log_start = 0  # an adopted run: its ready line is from before
        if unit.opts.ready is not None and unit.opts.ready.input:
            self.seen.discard(unit.opts.ready.input)  # a message of this run makes it ready
        if unit.opts.pattern is not None:
            if self.start_pattern is not None:
                await self.start_pattern(unit.opts.pattern)
            unit.pattern_running = True
            return
        if unit.adopt is not None:
            proc = process.adopt(unit.adopt.pid, unit.adopt.created, unit.adopt.mark)
            unit.started_at, unit.adopt = unit.adopt.created, None
        else:
            unit.log_start = process.size(unit.log_file)
            proc = await process.spawn(unit.opts, unit.log_file, unit.base_dir, unit.extra_env)
            unit.started_at = proc.created
            self.pids.write(unit.pid_record(proc))
        proc.exited_callback = self._changed
        unit.proc = proc
        for lease in unit.held:
            await asyncio.to_thread(self.leases.attach, lease.name, unit.name, proc.pid)
        logger.info("service started", service=unit.name, pid=proc.pid, adopted=proc.adopted)

    async def _supervise(self, unit: Unit) -> str:
        """Probe until ready, then watch; returns why it ends: stop, exited, live, deps."""
        ready = unit.opts.ready
        prober = Prober(ready, unit.log_file, unit.base_dir, self.seen) if ready else None
        if prober is not None:
            prober.from_offset(unit.log_start)
        while prober is not None:
            if (why := self._ended(unit)) is not None:
                return why
            result = await prober.check()
            if result.ok:
                break
            if result.refused:
                self._refused(unit)
            await self._wait_change(ready.interval if ready else 1.0)
        self._set(unit, "ready")
        live = unit.opts.live
        checker = Prober(live, unit.log_file, unit.base_dir, self.seen) if live else None
        failed, due = 0, time.monotonic()
        while True:
            if (why := self._ended(unit)) is not None:
                return why
            if checker is not None and live is not None and time.monotonic() >= due:
                result = await checker.check()
                failed = 0 if result.ok else failed + 1
                due = time.monotonic() + live.interval
                if result.refused:
                    self._refused(unit)
                if failed >= live.failures:
                    logger.warning(
                        "service failed its liveness probe", service=unit.name, reason=result.reason
                    )
                    return "live"
            await self._wait_change(min(live.interval, 1.0) if live else 1.0)

    def _ended(self, unit: Unit) -> str | None:
        if not unit.wanted:
            return "stop"
        if unit.proc is not None and not unit.proc.running():
            return "exited"
        if any(self.units[d].state in DOWN for d in unit.opts.depends_on):
            return "deps"
        return None

    async def _halt(self, unit: Unit) -> None:
        """Stop what runs of the service, forget its PID file, give its leases back."""
        proc, unit.proc = unit.proc, None
        if unit.pattern_running:
            self._set(unit, "stopping")
            unit.pattern_running = False
            if self.stop_pattern is not None and unit.opts.pattern is not None:
                await self.stop_pattern(unit.opts.pattern)
        if proc is not None:
            if proc.running() or process.members(proc):
                self._set(unit, "stopping")
                if not await process.stop(proc, unit.opts.stop_signal, unit.opts.stop_timeout, unit.force):
                    unit.error_code, unit.error = (
                        "STOP_FAILED",
                        f"{unit.name}: a process of its group survived SIGKILL",
                    )
            await proc.exited.wait()
            unit.last_exit_code = proc.returncode
            unit.last_run_time = time.time()
            self.pids.remove(unit.name)
            logger.info("service ended", service=unit.name, pid=proc.pid, code=proc.returncode)
        await release_leases(self.leases, unit)
        if unit.wanted:
            self._set(unit, "waiting")

    async def _backoff(self, unit: Unit, outcome: str) -> bool:
        """After a run ended on its own: wait and go again (True), or stay down."""
        opts = unit.opts
        if unit.started_at is not None and time.time() - unit.started_at >= opts.healthy_after:
            unit.failures = 0
        clean = outcome == "exited" and unit.last_exit_code == 0
        if opts.restart == "no" or (opts.restart == "on-failure" and clean):
            unit.wanted = False
            self._set(unit, "stopped" if clean else "failed")
            return False
        delay = unit.delay()
        unit.failures += 1
        unit.next_start_at = time.monotonic() + delay
        self._set(unit, "backoff")
        while unit.wanted and time.monotonic() < unit.next_start_at:
            await self._wait_change(unit.next_start_at - time.monotonic())
        unit.next_start_at = None
        if not unit.wanted:
            return False
        unit.restarts += 1
        service_restarted(unit.name)
        return True

    # ----- helpers -------------------------------------------------------------------
    def _refused(self, unit: Unit) -> None:
        """Run `on_failure.refused`: restart the service named, at most once per step of
        its backoff and never twice at once."""
        action = unit.opts.on_failure.get("refused")
        target = self.units.get(action.removeprefix("restart ")) if action else None
        if target is None or target.recovering or target.state != "ready":
            return  # one on its way up (or down) is being seen to already
        now = time.monotonic()
        if not target.recovery_due(now):
            return
        target.recovering, target.last_recovery = True, now
        logger.warning("connection refused: restarting", service=target.name, reported_by=unit.name)
        self._spawn(self._recover(target), f"recover.{target.name}")

    async def _recover(self, target: Unit) -> None:
        try:
            await self.restart(target.name)
        except ServiceError as exc:
            logger.warning("recovery failed", service=target.name, error=exc.message)
        finally:
            target.recoveries += 1  # the next recovery waits one backoff step longer
            target.recovering = False

    async def _stop_unit(self, unit: Unit, force: bool) -> None:
        unit.wanted, unit.force = False, force
        self._changed()
        if unit.task is not None:
            await asyncio.shield(unit.task)
        unit.force = False
        unit.extra_env = {}

    def _launch(self, unit: Unit) -> None:
        unit.wanted = True
        unit.error_code, unit.error = "", ""
        if unit.task is None or unit.task.done():
            unit.failures = 0
            unit.task = asyncio.create_task(self._guarded(unit), name=f"wireway[services].{unit.name}")
        if unit.state in ("stopped", "failed"):
            self._set(unit, "waiting")  # from now on, what start() reads is this run's
        self._changed()

    def _unit(self, name: str | None) -> Unit:
        unit = self.units.get(name or "")
        if unit is None:
            raise ServiceError(
                "UNKNOWN_SERVICE", f"no service named {name!r} (known: {', '.join(self.units)})"
            )
        return unit

    def _set(self, unit: Unit, state: State) -> None:
        if unit.state == state:
            return  # waking the others for nothing would keep every waiting loop busy
        logger.debug("service state", service=unit.name, state=state)
        unit.state = state
        gauges.show(unit.status())
        self._changed()

    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    async def _wait_change(self, seconds: float) -> None:
        event = self._change
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await event.wait()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"wireway[services].{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
