"""A command's runs: each in its own process group, its pipes on the event loop, stopped
with SIGTERM then SIGKILL, and started again after a growing delay."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import time
from typing import Any

from wireway.connectors.exec.config import Backoff, CommandOptions
from wireway.connectors.lines import LineReader

GROUP_POLL = 0.05  # seconds between checks that a stopped command's group is empty


class RestartDelay:
    """The waits between a command's runs (see `Backoff`)."""

    def __init__(self, options: Backoff) -> None:
        self.options = options
        self.exits = 0

    def next(self, ran_for: float) -> float:
        """Seconds to wait after a run that lasted `ran_for` seconds."""
        opts = self.options
        if ran_for >= opts.reset_after:
            self.exits = 0
        delay = min(opts.max, opts.initial * 2.0 ** min(self.exits, 32))
        self.exits += 1
        return max(0.0, delay * (1 + random.uniform(-opts.jitter, opts.jitter)))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member that changed user: still there
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Child:
    """One run of a command.

    It leads a new session and process group (its id is the child's pid), so signals
    reach whatever it started too. Its exit is seen through a pidfd on the event loop
    (a background process holding the stdout pipe open does not hide it), and its pipes
    are read and written without blocking the loop.
    """

    def __init__(self, popen: subprocess.Popen[bytes], label: str) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.label = label
        self.code: int | None = None
        self.started = time.monotonic()
        self.stdout = asyncio.StreamReader()
        self.stderr = asyncio.StreamReader()
        self.stdin_fd: int | None = None
        if popen.stdin is not None:
            self.stdin_fd = popen.stdin.fileno()
            os.set_blocking(self.stdin_fd, False)
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stopping: asyncio.Task[int] | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self._pidfd = -1
        self._waiter: asyncio.Future[int] | None = None

    @classmethod
    async def spawn(
        cls, options: CommandOptions, *, stdin: bool = False, env: dict[str, str] | None = None
    ) -> Child:
        """Start a run (raises OSError when the program cannot be started)."""
        full_env = {**os.environ, **options.env, **(env or {})}
        popen = await asyncio.to_thread(
            subprocess.Popen,
            options.command,
            shell=options.shell,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=options.cwd,
            start_new_session=True,
        )
        child = cls(popen, options.label)
        await child._watch()
        return child

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        for stream, reader in ((self.popen.stdout, self.stdout), (self.popen.stderr, self.stderr)):
            protocol = asyncio.StreamReaderProtocol(reader)
            transport, _ = await loop.connect_read_pipe(lambda p=protocol: p, stream)  # type: ignore[misc]
            self._transports.append(transport)
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfd (not Linux, or before 5.3): a thread waits
            self._waiter = asyncio.ensure_future(asyncio.to_thread(self.popen.wait))
            self._waiter.add_done_callback(lambda _: self._on_exit())
            return
        loop.add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        if self._pidfd >= 0:
            asyncio.get_running_loop().remove_reader(self._pidfd)
        if not self.exited.done():
            self.exited.set_result(None)

    async def wait(self) -> int:
        """The exit code once the command has exited (-N: ended by signal N)."""
        if self.code is None:
            await asyncio.shield(self.exited)
            # exited: reaping does not block
            self.code = self.popen.wait()
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1
        return self.code

    @property
    def running(self) -> bool:
        return not self.exited.done()

    def close_stdin(self) -> None:
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()

    def terminate(self) -> None:
        """SIGTERM to the run's process group (its supervisor sees it exit)."""
        _signal_group(self.pid, signal.SIGTERM)

    async def stop(self, grace: float) -> int:
        """End the run and anything it left in its group: SIGTERM, then SIGKILL after
        `grace` seconds; a run whose stdin is still open first gets its end and `grace`
        seconds to exit by itself. Safe to call again (the same stop is awaited)."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace))
        return await asyncio.shield(self._stopping)

    async def _stop(self, grace: float) -> int:
        if self.running and self.popen.stdin is not None and not self.popen.stdin.closed:
            # a command reading its stdin ends on its own at the end of it, after what
            # it was still reading: give it the time before SIGTERM
            self.close_stdin()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), grace)
        deadline = time.monotonic() + grace
        self.close_stdin()
        _signal_group(self.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), grace)
        if self.running:
            _signal_group(self.pid, signal.SIGKILL)
        code = await self.wait()
        # what the command started may still run (and hold its pipes): it got the
        # SIGTERM too; give it the rest of the time, then SIGKILL (nothing announces
        # that a process group is empty: look)
        while _group_alive(self.pid) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(GROUP_POLL)
        _signal_group(self.pid, signal.SIGKILL)
        return code

    def close(self) -> None:
        """Close the pipes (after `stop`)."""
        self.close_stdin()
        for transport in self._transports:
            transport.close()


async def log_lines(stream: asyncio.StreamReader, emit: Any, max_line_bytes: int = 64 * 1024) -> None:
    """Log each line of a command's stream with `emit(line)` until the stream ends."""
    reader = LineReader(stream.read, None, max_line_bytes=max_line_bytes)
    while (got := await reader.lines()) is not None:
        lines, long = got
        for line in lines:
            emit(line.decode("utf-8", "replace"))
        for head in long:
            emit(head.decode("utf-8", "replace") + "...")


async def settle(tasks: list[asyncio.Task[Any]], grace: float) -> None:
    """Let the tasks reading a run's pipes finish (its pipes hit their end), then cancel
    what is left: a process outside the group may hold a pipe open for ever."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
