"""Leases on named resources (`iface:wlan2`): one owner at a time, host-wide.

Each lease is a state file `<name>.json` (owner service, its mode, the wireway process
holding it and, once started, the service's own process), written atomically while
holding `fcntl.flock` on `<name>.lock`, so two instances never take one lease together.
A lease whose holder is gone (its wireway and its service process both dead, checked by
start time) is free: released, with its reset command run, when found.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from wireway.config.services import LeaseOptions
from wireway.observability import logging as log
from wireway.runtime.services.files import read_json, same_process, start_time, write_atomic

logger = log.get("services")
RESET_TIMEOUT = 30.0
VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class LeaseHeld(Exception):
    """The lease is held by another owner."""

    def __init__(self, lease: str, owner: str) -> None:
        super().__init__(f"lease {lease} is held by {owner}")
        self.owner = owner


def resolve(opts: LeaseOptions, env: Mapping[str, str]) -> LeaseOptions:
    """The lease a run holds: `$NAME` in its name and reset command read from the
    service's environment of that run (`iface:$IFACE` follows the interface a start
    chose). ValueError when a variable is not set."""

    def expand(text: str) -> str:
        def value(m: re.Match[str]) -> str:
            found = env.get(m.group(1))
            if not found:
                raise ValueError(f"lease {opts.name!r}: ${m.group(1)} is not set for this service")
            return found

        return VARIABLE.sub(value, text)

    reset = [expand(arg) for arg in opts.reset] if opts.reset else opts.reset
    return LeaseOptions(name=expand(opts.name), mode=expand(opts.mode), reset=reset)


def _file_name(lease: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", lease)


class Leases:
    """The leases of one wireway process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.me = os.getpid()
        self.my_start = start_time(self.me) or 0.0

    @contextlib.contextmanager
    def _locked(self, lease: str) -> Iterator[Path]:
        self.folder.mkdir(parents=True, exist_ok=True)
        base = self.folder / _file_name(lease)
        fd = os.open(f"{base}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for a file read and write only
            yield Path(f"{base}.json")
        finally:
            os.close(fd)

    def _alive(self, state: dict[str, Any]) -> bool:
        """The holder still exists: its wireway, or the service process it started."""
        for pid_key, start_key in (("holder_pid", "holder_start"), ("pid", "pid_start")):
            pid, created = state.get(pid_key), state.get(start_key)
            if isinstance(pid, int) and isinstance(created, float) and same_process(pid, created):
                return True
        return False

    def owner(self, lease: str) -> dict[str, Any] | None:
        with self._locked(lease) as path:
            state = read_json(path)
        return state if state is not None and self._alive(state) else None

    def try_take(self, opts: LeaseOptions, service: str) -> None:
        """Take the lease for `service` now, or raise LeaseHeld."""
        with self._locked(opts.name) as path:
            state = read_json(path)
            if state is not None and self._alive(state):
                mine = state.get("holder_pid") == self.me and state.get("service") == service
                adopted = state.get("service") == service and state.get("holder_pid") != self.me
                if not (mine or adopted):
                    raise LeaseHeld(opts.name, f"{state.get('service')} (pid {state.get('holder_pid')})")
            elif state is not None:
                self._reset(state)
            new = {
                "lease": opts.name,
                "service": service,
                "mode": opts.mode,
                "reset": opts.reset,
                "holder_pid": self.me,
                "holder_start": self.my_start,
                "since": time.time(),
            }
            if state is not None and state.get("service") == service:
                new.update({k: state[k] for k in ("pid", "pid_start") if k in state})
            write_atomic(path, new)

    async def take(self, opts: LeaseOptions, service: str, wait: float, wanted: Any) -> None:
        """Take the lease, waiting up to `wait` seconds while another holds it
        (and while `wanted()` stays true)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self.try_take(opts, service)
                return
            except LeaseHeld:
                if time.monotonic() >= deadline or not wanted():
                    raise
            await asyncio.sleep(0.2)

    def attach(self, lease: str, service: str, pid: int) -> None:
        """Record the service's process, so the lease outlives a killed wireway with it."""
        with self._locked(lease) as path:
            state = read_json(path)
            if state is None or state.get("service") != service:
                return
            state["pid"], state["pid_start"] = pid, start_time(pid)
            write_atomic(path, state)

    def release(self, lease: str, service: str) -> None:
        """Give the lease back (only its owner can) and run its reset command."""
        with self._locked(lease) as path:
            state = read_json(path)
            if state is None or state.get("service") != service:
                return
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._reset(state)

    def reconcile(self) -> None:
        """At start: free every lease whose holder is gone."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.json")):
            state = read_json(path)
            if state is None or self._alive(state):
                continue
            with self._locked(str(state.get("lease", path.stem))) as locked:
                again = read_json(locked)
                if again is None or self._alive(again):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    locked.unlink()
            lease, owner = state.get("lease"), state.get("service")
            logger.info("lease freed: its holder is gone", lease=lease, service=owner)
            self._reset(state)

    def _reset(self, state: dict[str, Any]) -> None:
        reset = state.get("reset")
        if not reset:
            return
        try:
            done = subprocess.run(reset, check=False, timeout=RESET_TIMEOUT, capture_output=True)
            if done.returncode != 0:
                logger.warning("lease reset failed", lease=state.get("lease"), code=done.returncode)
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("lease reset failed", lease=state.get("lease"), error=str(exc))
