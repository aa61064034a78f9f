"""What the supervisor knows of one service."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from wireway.config.services import LeaseOptions, Service
from wireway.runtime.services import process
from wireway.runtime.services.files import PidRecord
from wireway.runtime.services.leases import Leases, resolve
from wireway.runtime.services.process import Proc
from wireway.supervision import ServiceStatus, State

# a dependency in one of these states takes its dependents down
DOWN = frozenset({"stopped", "failed", "backoff", "stopping", "waiting"})


class Unit:
    """One service: its options, its process and its counters."""

    def __init__(self, service: Service, log_file: Path) -> None:
        self.name = service.name
        self.opts = service.options
        self.base_dir = Path(service.file).resolve().parent
        self.log_file = log_file
        self.state: State = "stopped"
        self.wanted = False  # it should run (started, or autostart)
        self.force = False  # the stop asked for SIGKILL at once
        self.task: asyncio.Task[None] | None = None
        self.proc: Proc | None = None
        self.adopt: PidRecord | None = None  # left running by an earlier wireway
        self.pattern_running = False
        self.extra_env: dict[str, str] = {}  # given to start(), until stopped
        self.held: list[LeaseOptions] = []  # the leases this run took (names resolved)
        self.log_start = 0  # the size of its log when this run began
        self.started_at: float | None = None
        self.restarts = 0
        self.failures = 0  # runs in a row that ended on their own: the backoff step
        self.last_exit_code: int | None = None
        self.last_run_time: float | None = None
        self.next_start_at: float | None = None  # monotonic
        self.error_code = ""
        self.error = ""
        self.recovering = False
        self.last_recovery = -1e9  # monotonic
        self.recoveries = 0  # in a row: the step of the recoveries' own backoff

    def busy(self) -> bool:
        """Running, or on its way to (waiting, backoff): a stop has something to do."""
        return self.wanted or self.proc is not None or self.state not in ("stopped", "failed")

    def delay(self) -> float:
        """The backoff before the next start: doubled per failure up to `max`, jittered."""
        backoff = self.opts.backoff
        base = min(backoff.max, backoff.initial * 2 ** min(self.failures, 30))
        spread = random.uniform(-backoff.jitter, backoff.jitter)
        return float(max(0.0, base * (1 + spread)))

    def pid_record(self, proc: Proc) -> PidRecord:
        """What its PID file holds for this run."""
        return PidRecord(self.name, proc.pid, proc.created, proc.pgid, dict(self.extra_env), proc.mark)

    def recovery_due(self, now: float) -> bool:
        """Whether an `on_failure` recovery may restart it now: once per step of its
        backoff (doubled per recovery in a row, up to `max`), the steps starting over
        once it went `healthy_after` seconds without one."""
        backoff = self.opts.backoff

        def step(n: int) -> float:
            return float(min(backoff.max, backoff.initial * 2 ** min(n, 30)))

        since = now - self.last_recovery
        if since >= step(self.recoveries) + self.opts.healthy_after:
            self.recoveries = 0
        return since >= step(self.recoveries)

    def status(self) -> ServiceStatus:
        running = self.state in ("starting", "ready", "stopping")
        next_in = None
        if self.next_start_at is not None:
            next_in = round(max(0.0, self.next_start_at - time.monotonic()), 2)
        return ServiceStatus(
            name=self.name,
            state=self.state,
            pid=self.proc.pid if self.proc is not None else None,
            started_at=self.started_at if running else None,
            ready=self.state == "ready",
            restarts=self.restarts,
            last_exit_code=self.last_exit_code,
            last_run_time=self.last_run_time,
            next_start_in=next_in,
            depends_on=tuple(self.opts.depends_on),
            pattern=self.opts.pattern,
            leases=tuple(lease.name for lease in self.held),
        )


def requires(units: dict[str, Unit], name: str) -> set[str]:
    """Every service `name` depends on, directly or not."""
    found: set[str] = set()
    todo = list(units[name].opts.depends_on)
    while todo:
        dep = todo.pop()
        if dep not in found:
            found.add(dep)
            todo.extend(units[dep].opts.depends_on)
    return found


async def take_leases(leases: Leases, unit: Unit) -> None:
    """Take the service's leases, named for this run (`$VAR` from its environment);
    LeaseHeld (ValueError: a variable not set) with what was taken kept in `unit.held`."""
    env = process.environment(unit.opts, unit.extra_env)
    for lease in [resolve(x, env) for x in unit.opts.lease_list()]:
        await leases.take(lease, unit.name, unit.opts.lease_timeout, lambda: unit.wanted)
        unit.held.append(lease)


async def release_leases(leases: Leases, unit: Unit) -> None:
    """Give back what this run took (its reset commands run)."""
    held, unit.held = unit.held, []
    for lease in held:
        await asyncio.to_thread(leases.release, lease.name, unit.name)
