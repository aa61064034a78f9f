"""Which files a `path` names, and a wake-up when something changes among them."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
from pathlib import Path

from watchfiles import Change, awatch

from wireway.observability import logging as log

logger = log.get("file")


def absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def is_glob(path: str) -> bool:
    return glob.has_magic(path)


def matches(pattern: str) -> list[str]:
    """The regular files `pattern` names now (a glob, or one path)."""
    if not is_glob(pattern):
        return [pattern] if os.path.isfile(pattern) else []
    return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))


def watch_root(pattern: str) -> tuple[str, bool]:
    """The folder to watch for `pattern`, and whether its subfolders as well."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            return str(Path(*fixed)), True
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "/", False


def mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _is_dir(path: str) -> bool:
    return os.path.isdir(path)


class Watcher:
    """Sets `changed` when a file in the watched folder changes, and `listing` when
    one appears or goes (then the glob is run again). Changes come from inotify
    where the system has it, else from polling (both through watchfiles)."""

    def __init__(self, pattern: str, label: str, poll_interval: float, linger: float) -> None:
        self.root, self.recursive = watch_root(pattern)
        self.label = label
        self.poll_interval = poll_interval
        # ms without a change the watcher waits for before it reports (the input's
        # `linger`; 50 ms at the most in all): the delay a live line may add to its
        # latency, against wake-ups (and batches) per second while files change
        self.step_ms = max(1, round(linger * 1000))
        self.changed = asyncio.Event()
        self.listing = True
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"wireway[{self.label}].watch")

    async def run(self) -> None:
        while not self.stopping.is_set():
            if not _is_dir(self.root):  # not there yet: the reader polls meanwhile
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self.stopping.wait()
                continue
            try:
                async for changes in awatch(
                    self.root,
                    watch_filter=None,
                    step=self.step_ms,
                    debounce=max(50, self.step_ms),
                    stop_event=self.stopping,
                    recursive=self.recursive,
                    rust_timeout=int(self.poll_interval * 1000),
                    ignore_permission_denied=True,
                ):
                    if any(change != Change.modified for change, _ in changes):
                        self.listing = True
                    self.changed.set()
            except (OSError, RuntimeError) as exc:  # the folder went away meanwhile
                logger.debug("file watch restarts", input=self.label, error=str(exc))
                self.listing = True
                self.changed.set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self.stopping.wait()

    async def wait(self, seconds: float) -> None:
        """Until something changed, at most `seconds`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.changed.wait()
        self.changed.clear()

    async def stop(self) -> None:
        self.stopping.set()
        self.changed.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 5)
            except (TimeoutError, asyncio.CancelledError):
                self.task.cancel()
