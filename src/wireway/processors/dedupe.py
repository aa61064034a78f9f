"""`dedupe`: drop messages whose key was already accepted recently."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
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


class DedupeConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `dedupe`.

    A key is remembered only once its message is in the outboxes (so a message
    refused for backpressure can be sent again). Redeliveries after that are
    dropped and counted (outcome `duplicate`), and the input still acknowledges them.
    """

    key: Annotated[str, Meta(description="CEL expression for the key")] = "messageId"
    window: Annotated[int, Meta(ge=1, description="how many recent keys to remember")] = 1_000_000


class SeenCache:
    """A bounded set of recent keys, oldest forgotten first.

    A set plus a deque of the same key objects: about 120 bytes a key, two thirds of
    an OrderedDict's (the sensor application keeps 100,000 of them).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.keys: set[str] = set()
        self.order: deque[str] = deque()

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def add(self, key: str) -> None:
        self.add_many((key,))

    def add_many(self, keys: Iterable[str]) -> None:
        """Remember each key in turn (a key already known keeps its place)."""
        known, order, size = self.keys, self.order, self.size
        for key in keys:
            if key in known:
                continue
            known.add(key)
            order.append(key)
            if len(order) > size:
                known.discard(order.popleft())

    def clear(self) -> None:
        self.keys.clear()
        self.order.clear()


@register_processor("dedupe", config=DedupeConfig)
class Dedupe(Processor):
    """Drop a message whose key was already accepted.

    A subclass may share its `seen` cache with the rest of an application (the
    cache is then the application service's, handed over in `use_service`).
    """

    def __init__(self, config: DedupeConfig, *, base_dir: Path) -> None:
        self.by_id = config.key == "messageId"
        if not self.by_id:
            try:
                self.expr = Expr(config.key)
            except ExpressionError as exc:
                raise ConfigError(str(exc), path="key") from exc
        self.seen = SeenCache(config.window)

    def key(self, msg: Message) -> str:
        return msg.message_id if self.by_id else str(self.expr.evaluate(msg.to_context()))

    async def process(self, batch: list[Message]) -> StepResult:
        if self.by_id:
            ids = [msg.message_id for msg in batch]
            # the usual batch: no id seen before nor twice; checked at C speed
            if len(set(ids)) == len(ids) and self.seen.keys.isdisjoint(ids):
                return StepResult(list(batch))
        passed: list[Message] = []
        failed: list[tuple[Message, list[str]]] = []
        batch_keys: set[str] = set()
        seen = self.seen.keys  # the set: `in` without SeenCache.__contains__'s call
        for msg in batch:
            try:
                key = self.key(msg)
            except Exception as exc:  # noqa: BLE001  (CEL evaluation error)
                failed.append((msg, [f"dedupe: cannot evaluate key: {exc}"]))
                continue
            if key in seen or key in batch_keys:
                continue
            batch_keys.add(key)
            passed.append(msg)
        dropped = len(batch) - len(passed) - len(failed)
        if dropped:
            MESSAGES.labels(self.pattern or "-", "dedupe", "duplicate").inc(dropped)
            if self.events is not None:
                for _ in range(dropped):
                    self.events.rejected(self.pattern, "duplicate: already accepted")
        return StepResult(passed, failed)

    def committed(self, messages: list[Message]) -> None:
        """Remember the keys of messages now durable."""
        if self.by_id:
            self.seen.add_many(msg.message_id for msg in messages)
        else:
            self.seen.add_many(self.key(msg) for msg in messages)
