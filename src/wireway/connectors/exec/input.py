"""The `exec` input: a command's stdout lines as messages, the command restarted when it exits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import ClassVar

from wireway.connectors.base import Input, InputContext
from wireway.connectors.exec.config import ExecInputConfig
from wireway.connectors.exec.process import Child, RestartDelay, log_lines, settle
from wireway.connectors.lines import LineReader, line_codec
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("exec")


@register_input("exec", config=ExecInputConfig)
class ExecInput(Input):
    """Run a command and ingest its stdout, one message per line."""

    config: ExecInputConfig
    formats: ClassVar[tuple[str, ...] | None] = None

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        line_codec(self.iface.new_codec)  # a format that cannot read lines fails the start
        self.child: Child | None = None
        self.stopping = False
        self.stopped = asyncio.Event()  # ends a wait between runs at once
        self.runs = 0
        self.state = "starting"
        self.task = asyncio.create_task(self.supervise(), name=f"wireway[{self.name}].exec")

    async def stop(self) -> None:
        if not hasattr(self, "task"):
            return
        self.stopping = True
        self.stopped.set()
        child = self.child
        if child is not None:
            await child.stop(self.config.stop_timeout)
        # the run's last lines are read and ingested, then the supervisor ends
        await asyncio.wait({self.task}, timeout=self.config.stop_timeout)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.state = "stopped"

    def health(self) -> dict[str, str]:
        up = self.state in ("running", "finished")
        return {f"exec:{self.name}": "up" if up else "down"}

    def again(self, code: int | None) -> bool:
        """Whether to start the command again after a run that ended with `code`
        (None: it could not be started)."""
        if self.stopping:
            return False
        restart = self.config.restart
        return restart == "always" or (restart == "on-failure" and code != 0)

    async def supervise(self) -> None:
        cfg = self.config
        delay = RestartDelay(cfg.backoff)
        while not self.stopping:
            started = time.monotonic()
            code = await self.run_once()
            if not self.again(code):
                break
            wait = delay.next(time.monotonic() - started)
            self.state = "restarting"
            logger.warning(
                "command exited, restarting",
                input=self.name,
                command=cfg.label,
                code=code,
                wait=round(wait, 2),
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.stopped.wait()
        if not self.stopping:
            self.state = "finished"
            logger.info("command finished, not restarting", input=self.name, command=cfg.label)
            self.ctx.finished()

    async def run_once(self) -> int | None:
        """One run of the command, its stdout ingested; its exit code."""
        cfg = self.config
        try:
            child = await Child.spawn(cfg)
        except OSError as exc:
            logger.error("cannot start command", input=self.name, command=cfg.label, error=str(exc))
            return None
        self.child = child
        self.runs += 1
        self.state = "running"
        self.ctx.connection_opened("exec")
        level = cfg.stderr_level
        emit = getattr(logger, level)

        def stderr(line: str) -> None:
            emit("command stderr", input=self.name, command=cfg.label, pid=child.pid, line=line)

        readers = [
            asyncio.create_task(self.pump(child), name=f"wireway[{self.name}].stdout"),
            asyncio.create_task(log_lines(child.stderr, stderr), name=f"wireway[{self.name}].stderr"),
        ]
        try:
            code = await child.wait()
            await child.stop(cfg.stop_timeout)  # whatever it left running
            await settle(readers, cfg.stop_timeout)
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await child.stop(cfg.stop_timeout)  # cancelled: no process stays behind
            child.close()
            self.child = None
            self.ctx.connection_closed("exec")
        for task in readers:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                logger.error("reading the command failed", input=self.name, error=str(error))
        return code

    async def pump(self, child: Child) -> None:
        """Ingest the run's stdout lines, one batch per read (a new codec per run: a new stream)."""
        reader = LineReader(
            child.stdout.read,
            line_codec(self.iface.new_codec),
            max_line_bytes=self.config.max_line_bytes,
            where=f"stdout of {self.config.label}",
        )
        while (batch := await reader.read()) is not None:
            if batch.values or batch.errors:
                await self.ctx.ingest(batch.values, source=self.name, errors=batch.errors)
