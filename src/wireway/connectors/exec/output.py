"""The `exec` output: messages as lines on a long-running command's stdin, or one run
of the command per message (exit code 0 confirms it)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, ClassVar

import msgspec

from wireway.connectors.base import Output
from wireway.connectors.exec.config import ExecOutputConfig
from wireway.connectors.exec.process import Child, RestartDelay, log_lines, settle
from wireway.connectors.lines import write_all
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.formats.codec import Codec
from wireway.observability import logging as log
from wireway.registry import register_output

logger = log.get("exec")
FIRST_START = 5.0  # seconds `open` waits for the command's first start
MAX_ENV_PAYLOAD = 64 * 1024  # a larger WIREWAY_PAYLOAD could exceed the kernel's limit per variable


@register_output("exec", config=ExecOutputConfig)
class ExecOutput(Output):
    """Write each message as one line to a command's stdin (or run it per message)."""

    config: ExecOutputConfig
    formats: ClassVar[tuple[str, ...] | None] = None

    async def open(self) -> None:
        self.child: Child | None = None
        self.codec: Codec = self.iface.new_codec()
        self.fresh = True  # the running command has not had its stream's header yet
        self.closing = False
        self.closed = asyncio.Event()  # ends a wait between runs at once
        self.task: asyncio.Task[None] | None = None
        self.first_start = asyncio.Event()
        if not self.config.per_message:
            self.task = asyncio.create_task(self.supervise(), name=f"wireway[{self.name}].exec")
            # the first batch finds the command running (a failed start is retried later)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FIRST_START):
                    await self.first_start.wait()

    async def close(self) -> None:
        self.closing = True
        self.closed.set()
        child = self.child
        if child is not None:
            await child.stop(self.config.stop_timeout)
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=self.config.stop_timeout)
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def health(self) -> dict[str, str]:
        if self.config.per_message:
            return {}
        return {f"exec:{self.name}": "up" if self.child is not None else "down"}

    def emitter(self, child: Child, level: str, stream: str) -> Any:
        emit = getattr(logger, level)

        def line(text: str) -> None:
            emit(f"command {stream}", output=self.name, command=self.config.label, pid=child.pid, line=text)

        return line

    def watch_output(self, child: Child) -> list[asyncio.Task[None]]:
        """Log what a run writes to stdout (debug) and stderr (`stderr_level`)."""
        return [
            asyncio.create_task(log_lines(child.stdout, self.emitter(child, "debug", "stdout"))),
            asyncio.create_task(
                log_lines(child.stderr, self.emitter(child, self.config.stderr_level, "stderr"))
            ),
        ]

    # ----- one long-running command --------------------------------------------------
    async def supervise(self) -> None:
        cfg = self.config
        delay = RestartDelay(cfg.backoff)
        while not self.closing:
            started = time.monotonic()
            code: int | None = None
            try:
                child = await Child.spawn(cfg, stdin=True)
            except OSError as exc:
                logger.error("cannot start command", output=self.name, command=cfg.label, error=str(exc))
                self.first_start.set()
            else:
                self.codec = self.iface.new_codec()  # a new stream: its header comes first again
                self.fresh = True
                self.child = child
                self.first_start.set()
                logs = self.watch_output(child)
                try:
                    code = await child.wait()
                    self.child = None
                    await child.stop(cfg.stop_timeout)
                    await settle(logs, cfg.stop_timeout)
                finally:
                    self.child = None
                    await child.stop(cfg.stop_timeout)  # cancelled: no process stays behind
                    child.close()
            if self.closing:
                return
            wait = delay.next(time.monotonic() - started)
            logger.warning(
                "command exited, restarting",
                output=self.name,
                command=cfg.label,
                code=code,
                wait=round(wait, 2),
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.closed.wait()

    def encode(self, batch: list[Message]) -> tuple[bytes, dict[int, str]]:
        """The batch as lines of the format, and the messages it cannot carry."""
        parts: list[bytes] = []
        refused: dict[int, str] = {}
        payload_only = self.config.payload_only
        for i, msg in enumerate(batch):
            try:
                parts.append(self.codec.encode(msg, payload_only) + b"\n")
            except ValueError as exc:
                refused[i] = str(exc)
        return b"".join(parts), refused

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        if self.config.per_message:
            return await self.run_each(batch)
        child = self.child
        if child is None or child.stdin_fd is None or not child.running:
            raise RetryableError(f"command `{self.config.label}` is not running")
        data, refused = self.encode(batch)
        if self.fresh:
            first = next((m for i, m in enumerate(batch) if i not in refused), None)
            data = self.codec.header(first) + data
        try:
            await write_all(child.stdin_fd, data)
        except asyncio.CancelledError:
            # (the delivery's timeout) its stdin may end in half a record: the next run
            # starts a clean stream
            child.terminate()
            raise
        except OSError as exc:
            raise RetryableError(f"command `{self.config.label}` stopped reading: {exc.strerror}") from exc
        self.fresh = False
        return refused or None

    # ----- one run per message ---------------------------------------------------------
    def environment(self, msg: Message) -> dict[str, str]:
        env = {
            "WIREWAY_MESSAGE_ID": msg.message_id,
            "WIREWAY_SOURCE": msg.source,
            "WIREWAY_MESSAGE_TYPE": msg.message_type,
            "WIREWAY_TIMESTAMP": msg.timestamp,
            "WIREWAY_CORRELATION_ID": msg.metadata.correlation_id or "",
            "WIREWAY_RETRY_COUNT": str(msg.metadata.retry_count),
        }
        payload = msgspec.json.encode(msg.payload)
        if len(payload) <= MAX_ENV_PAYLOAD:
            env["WIREWAY_PAYLOAD"] = payload.decode()
        return env

    async def run_each(self, batch: list[Message]) -> dict[int, str] | None:
        refused: dict[int, str] = {}
        for i, msg in enumerate(batch):
            codec = self.iface.new_codec()
            try:
                data = codec.header(msg) + codec.encode(msg, self.config.payload_only) + b"\n"
            except ValueError as exc:
                refused[i] = str(exc)
                continue
            reason = await self.run_one(msg, data)
            if reason is not None:
                refused[i] = reason
        return refused or None

    async def run_one(self, msg: Message, data: bytes) -> str | None:
        """Run the command for one message: None when it confirmed it, the reason when it
        refused it for good; raises RetryableError to retry."""
        cfg = self.config
        label = cfg.label
        try:
            child = await Child.spawn(cfg, stdin=True, env=self.environment(msg))
        except OSError as exc:
            raise RetryableError(f"cannot start command `{label}`: {exc}") from exc
        logs = self.watch_output(child)
        try:
            assert child.stdin_fd is not None
            # a command that does not read its stdin has the message in its environment
            with contextlib.suppress(BrokenPipeError):
                await write_all(child.stdin_fd, data)
            child.close_stdin()
            try:
                async with asyncio.timeout(cfg.timeout):
                    code = await child.wait()
            except TimeoutError:
                raise RetryableError(f"command `{label}` took longer than {cfg.timeout:g}s") from None
        finally:
            await child.stop(cfg.stop_timeout)
            await settle(logs, cfg.stop_timeout)
            child.close()
        if code == 0:
            return None
        if code in cfg.dead_letter_codes:
            return f"command `{label}` exited with code {code}"
        raise RetryableError(f"command `{label}` exited with code {code}")
