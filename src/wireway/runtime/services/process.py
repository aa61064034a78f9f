"""A service's process: started in its own session (so its whole process group can be
signalled), its output appended to a log file (so it outlives a killed wireway),
watched as a child or, when adopted from an earlier wireway, by polling its PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil

from wireway.config.services import ServiceOptions
from wireway.runtime.services.files import same_process, start_time

POLL = 0.2  # seconds between checks of an adopted process or of a stopping group
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_KEEP = 3
ROTATE_EVERY = 10.0  # seconds between looks at the size of the logs
# in the environment of every process of a service's run (its children inherit it): a
# process that left the group (setsid, a daemon's double fork) is still found and stopped
MARK = "WIREWAY_SERVICE_RUN"


class Proc:
    """A running service process (a child of this wireway, or adopted)."""

    def __init__(
        self, pid: int, created: float, child: asyncio.subprocess.Process | None, mark: str = ""
    ) -> None:
        self.pid = pid
        self.mark = mark
        self.pgid = pid  # a session leader leads its own group
        self.created = created
        self.child = child
        self.returncode: int | None = None
        self.exited = asyncio.Event()
        self.exited_callback: Callable[[], None] | None = None
        self._task = asyncio.create_task(self._watch(), name=f"wireway[services].watch.{pid}")

    @property
    def adopted(self) -> bool:
        return self.child is None

    async def _watch(self) -> None:
        if self.child is not None:
            self.returncode = await self.child.wait()
        else:  # not our child: its exit code is its parent's to read
            while same_process(self.pid, self.created):  # noqa: ASYNC110  (no event to wait on)
                await asyncio.sleep(POLL)
        self.exited.set()
        if self.exited_callback is not None:
            self.exited_callback()

    def running(self) -> bool:
        return not self.exited.is_set()


def environment(options: ServiceOptions, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a service's process gets: wireway's, its `env:`, then the
    variables of the start request."""
    return {**os.environ, **options.env, **(extra_env or {})}


async def spawn(
    options: ServiceOptions, log_file: Path, base_dir: Path, extra_env: dict[str, str] | None = None
) -> Proc:
    """Start the command; raises OSError (or KeyError for an unknown user) when it
    cannot be started."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = environment(options, extra_env)
    env[MARK] = mark = uuid.uuid4().hex
    cwd = str(base_dir / options.cwd) if options.cwd else None
    demote = None
    if options.user is not None and os.geteuid() == 0:
        account = pwd.getpwnam(options.user)  # KeyError: no such user
        env["HOME"], env["USER"], env["LOGNAME"] = account.pw_dir, account.pw_name, account.pw_name

        def demote() -> None:  # in the child, before exec (uvloop takes no `user=`)
            os.initgroups(account.pw_name, account.pw_gid)
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)

    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        common: dict[str, object] = {
            "stdin": asyncio.subprocess.DEVNULL,
            "stdout": out,
            "stderr": asyncio.subprocess.STDOUT,
            "start_new_session": True,
            "cwd": cwd,
            "env": env,
        }
        if demote is not None:
            common["preexec_fn"] = demote
        if isinstance(options.command, str):
            child = await asyncio.create_subprocess_shell(options.command, **common)  # type: ignore[arg-type]
        else:
            assert options.command is not None
            child = await asyncio.create_subprocess_exec(*options.command, **common)  # type: ignore[arg-type]
    finally:
        os.close(out)
    created = start_time(child.pid) or time.time()
    return Proc(child.pid, created, child, mark)


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def adopt(pid: int, created: float, mark: str = "") -> Proc:
    return Proc(pid, created, None, mark)


def members(proc: Proc, group: bool = True) -> list[psutil.Process]:
    """The living (not zombie) processes of the run: its process group (unless `group`
    is false) and every process carrying its mark."""
    found = []
    me = os.getpid()
    for other in psutil.process_iter(["status", "environ"], ad_value=None):
        with contextlib.suppress(psutil.Error, OSError):
            if other.info["status"] == psutil.STATUS_ZOMBIE or other.pid == me:
                continue
            marked = bool(proc.mark) and (other.info["environ"] or {}).get(MARK) == proc.mark
            if marked or (group and os.getpgid(other.pid) == proc.pgid):
                found.append(other)
    return found


def _signal(proc: Proc, sig: int, group: bool) -> None:
    """`sig` to the process group, and to the marked processes that left it."""
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pgid, sig)
    for other in members(proc, group=False):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(other.pid) != proc.pgid or not group:
                other.send_signal(sig)


async def stop(proc: Proc, stop_signal: str, grace: float, force: bool = False) -> bool:
    """The stop signal to the run's processes (its group, and those of its mark that
    left it), SIGKILL after `grace` seconds (at once with `force`); returns once none
    is left and the leader is reaped. False when one still lives after the SIGKILL."""
    sig = signal.Signals[stop_signal]
    # an adopted leader gone: its group's ID may be another's by now (its mark is not)
    group = not proc.adopted or same_process(proc.pid, proc.created)
    if not group and not proc.mark:
        return True
    _signal(proc, sig, group)
    deadline = time.monotonic() + (0 if force else grace)
    while time.monotonic() < deadline:
        if not proc.running() and not members(proc, group):
            return True
        await asyncio.sleep(POLL)
    _signal(proc, signal.SIGKILL, group)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if not proc.running() and not members(proc, group):
            return True
        await asyncio.sleep(POLL / 4)
    return False


def rotate(log_file: Path) -> None:
    """Copy a log grown past LOG_MAX_BYTES to `.1` (older ones shifted up to LOG_KEEP)
    and truncate it: the service keeps appending to the same open file."""
    try:
        if log_file.stat().st_size <= LOG_MAX_BYTES:
            return
    except FileNotFoundError:
        return
    for i in range(LOG_KEEP - 1, 0, -1):
        older = log_file.with_name(f"{log_file.name}.{i}")
        if older.exists():
            os.replace(older, log_file.with_name(f"{log_file.name}.{i + 1}"))
    shutil.copyfile(log_file, log_file.with_name(f"{log_file.name}.1"))
    with open(log_file, "r+b") as f:
        f.truncate(0)


async def rotate_logs(paths: list[Path]) -> None:
    """Rotate the logs that grew too big, every ROTATE_EVERY seconds, for ever."""
    while True:
        await asyncio.sleep(ROTATE_EVERY)
        for path in paths:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(rotate, path)
