"""What the rest of wireway sees of the processes a deployment runs beside its patterns
(the `services:` section): their state, and starting and stopping them.

The engine's supervisor (runtime/services/) implements `ServiceControl`; applications
reach it through `EngineView.services` (None when no pattern folder declares
services), the engine's HTTP routes and `wireway services` use it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

State = Literal["stopped", "waiting", "starting", "ready", "backoff", "stopping", "failed"]


class ServiceError(Exception):
    """A request about a service that cannot be done; `code` names why for an API:
    UNKNOWN_SERVICE, ALREADY_RUNNING, NOT_RUNNING, EXECUTION_FAILED, STOP_FAILED,
    LEASE_HELD."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ServiceStatus:
    """One service as it is now.

    `state`: stopped (never started, or stopped on request), waiting (for what it
    depends on to be ready, or for a lease), starting (its process runs, its readiness
    probe has not passed yet), ready (running and ready; a service without a probe is
    ready once started), backoff (it exited and is started again after
    `next_start_in` seconds), stopping, failed (`restart: no` or `on-failure` after a
    failure: it stays down until started again).
    """

    name: str
    state: State
    pid: int | None = None
    started_at: float | None = None  # epoch seconds of the running process's start
    ready: bool = False
    restarts: int = 0
    last_exit_code: int | None = None
    last_run_time: float | None = None  # epoch seconds the last run ended
    next_start_in: float | None = None
    depends_on: tuple[str, ...] = ()
    pattern: str | None = None  # a wireway pattern run as a service
    leases: tuple[str, ...] = ()  # the leases its running process holds (names resolved)


class ServiceControl(Protocol):
    """The supervisor as others use it. Starting a service starts what it depends on
    first (each ready before the next); stopping one stops what depends on it first."""

    def names(self) -> list[str]: ...

    def status(self, name: str | None = None) -> list[ServiceStatus]:
        """Every service (in start order), or the one named (ServiceError UNKNOWN_SERVICE)."""
        ...

    async def start(self, name: str, env: Mapping[str, str] | None = None) -> ServiceStatus:
        """Start it (and what it depends on); returns once it is ready or has failed
        (ServiceError ALREADY_RUNNING, EXECUTION_FAILED, LEASE_HELD). `env`: variables
        added to the named service's environment (over its `env:`) for this run and
        its restarts until it is stopped (the field kit's control API hands the
        options of `run-script` over this way)."""
        ...

    async def stop(self, name: str, force: bool = False) -> ServiceStatus:
        """Stop what depends on it, then it; `force` sends SIGKILL at once after the
        stop signal (ServiceError NOT_RUNNING, STOP_FAILED)."""
        ...

    async def restart(self, name: str) -> ServiceStatus: ...

    def log_path(self, name: str) -> Path:
        """The file its output goes to (rotated beside it)."""
        ...
