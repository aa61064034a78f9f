"""`throttle`: at most N messages per interval and key; the input waits, or the rest is dropped."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from wireway.envelope import Message
from wireway.errors import ConfigError
from wireway.expr import Expr, ExpressionError
from wireway.observability.metrics import MESSAGES
from wireway.processors.base import Processor, StepResult
from wireway.registry import register_processor


class ThrottleConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `throttle`.

    At most `limit` messages of one key pass in any `interval` seconds (a sliding
    window: never more, at any instant). By default a batch over the limit is held
    until its last message's turn comes, then passes whole: the input is slowed
    (its sender waits for its acknowledgement), nothing is lost, and held messages
    are counted (outcome `delayed`). With `drop: true` the messages over the limit
    are dropped instead and counted (outcome `throttled`); the input acknowledges them.
    """

    limit: Annotated[int, Meta(ge=1, description="messages per interval and key")]
    interval: Annotated[float, Meta(gt=0, description="seconds")] = 1.0
    key: Annotated[
        str | None, Meta(description="CEL expression for the key (default: one limit for all messages)")
    ] = None
    drop: Annotated[bool, Meta(description="drop what is over the limit instead of waiting")] = False


@register_processor("throttle", config=ThrottleConfig)
class Throttle(Processor):
    """Keep each key under `limit` messages per `interval`, by waiting or dropping."""

    def __init__(self, config: ThrottleConfig, *, base_dir: Path) -> None:
        self.expr: Expr | None = None
        if config.key is not None:
            try:
                self.expr = Expr(config.key)
            except ExpressionError as exc:
                raise ConfigError(str(exc), path="key") from exc
        self.limit = config.limit
        self.interval = config.interval
        self.drop = config.drop
        # key -> release times of its last `limit` messages (oldest first)
        self.sent: dict[str, deque[float]] = {}
        self.clock: Callable[[], float] = time.monotonic
        self.next_prune = 0.0

    def release_at(self, key: str, now: float) -> float:
        """When the next message of `key` may go (now, or once its oldest of the last
        `limit` is `interval` old)."""
        times = self.sent.get(key)
        if times is None or len(times) < self.limit:
            return now
        return max(now, times[0] + self.interval)

    def take(self, key: str, at: float) -> None:
        times = self.sent.get(key)
        if times is None:
            times = self.sent[key] = deque(maxlen=self.limit)
        times.append(at)

    def prune(self, now: float) -> None:
        """Forget keys whose last message is older than the interval (they limit nothing)."""
        if now < self.next_prune:
            return
        self.next_prune = now + self.interval
        old = now - self.interval
        for key in [k for k, times in self.sent.items() if times[-1] <= old]:
            del self.sent[key]

    async def process(self, batch: list[Message]) -> StepResult:
        now = self.clock()
        self.prune(now)
        passed: list[Message] = []
        failed: list[tuple[Message, list[str]]] = []
        last = now
        delayed = 0
        for msg in batch:
            if self.expr is None:
                key = ""
            else:
                try:
                    key = str(self.expr.evaluate(msg.to_context()))
                except Exception as exc:  # noqa: BLE001  (CEL evaluation error)
                    failed.append((msg, [f"throttle: cannot evaluate key: {exc}"]))
                    continue
            at = self.release_at(key, now)
            if at > now:
                if self.drop:
                    continue
                delayed += 1
                last = max(last, at)
            self.take(key, at)
            passed.append(msg)
        dropped = len(batch) - len(passed) - len(failed)
        label = self.pattern or "-"
        if dropped:
            MESSAGES.labels(label, "throttle", "throttled").inc(dropped)
            if self.events is not None:
                for _ in range(dropped):
                    self.events.rejected(self.pattern, "throttled: over the limit")
        if delayed:
            MESSAGES.labels(label, "throttle", "delayed").inc(delayed)
            await asyncio.sleep(last - now)
        return StepResult(passed, failed)
