"""`dedupe`: drop messages whose key was already accepted recently."""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from wireway.envelope import Message
from wireway.errors import ConfigError
from wireway.expr import Expr, ExpressionError
from wireway.observability.metrics import MESSAGES
from wireway.processors.base import Processor, StepResult
from wireway.processors.state import StateFile, claim_path, release_path, transaction
from wireway.registry import register_processor

SCHEMA = "CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL);"


class DedupeConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `dedupe`.

    A key is remembered only once its message is in the outboxes (so a message
    refused for backpressure can be sent again). Redeliveries after that are
    dropped and counted (outcome `duplicate`), and the input still acknowledges them.

    Without `window` the last `max_keys` keys are remembered in memory (a restart
    forgets them). With `window: SECONDS` a key is a duplicate only for that long
    after its message was accepted, and the keys are also kept in a state file in
    the data folder (`state/<pattern>.dedupe.db`), so a restart still drops recent
    duplicates; at most `max_keys` are kept, the oldest forgotten first.
    """

    key: Annotated[str, Meta(description="CEL expression for the key")] = "messageId"
    window: Annotated[
        float | None, Meta(description="seconds a key stays a duplicate (kept across restarts)")
    ] = None
    max_keys: Annotated[int, Meta(ge=1, description="how many recent keys to remember")] = 1_000_000

    def __post_init__(self) -> None:
        if self.window is not None and self.window <= 0:
            raise ValueError("Expected a number of seconds > 0 - at `$.window`")


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


class TimedSeen:
    """Keys with the time they were accepted, oldest first; a key older than `window`
    seconds, or beyond the newest `size`, is forgotten."""

    def __init__(self, window: float, size: int) -> None:
        self.window = window
        self.size = size
        self.at: dict[str, float] = {}

    def fresh(self, key: str, now: float) -> bool:
        at = self.at.get(key)
        return at is not None and at > now - self.window

    def add(self, key: str, now: float) -> None:
        self.at.pop(key, None)  # moves to the end: the newest
        self.at[key] = now
        if len(self.at) > self.size:
            del self.at[next(iter(self.at))]

    def expire(self, now: float) -> None:
        old = now - self.window
        at = self.at
        while at:
            first = next(iter(at))
            if at[first] > old:
                return
            del at[first]


def _save(conn: sqlite3.Connection, rows: list[tuple[str, float]], before: float | None, keep: int) -> None:
    statements = [("INSERT OR REPLACE INTO seen (key, at) VALUES (?, ?)", rows)]
    transaction(conn, statements)
    if before is not None:
        conn.execute("DELETE FROM seen WHERE at <= ?", (before,))
        conn.execute(
            "DELETE FROM seen WHERE key NOT IN (SELECT key FROM seen ORDER BY at DESC LIMIT ?)", (keep,)
        )


def _load(conn: sqlite3.Connection, after: float, keep: int) -> list[tuple[str, float]]:
    rows = conn.execute(
        "SELECT key, at FROM seen WHERE at > ? ORDER BY at DESC LIMIT ?", (after, keep)
    ).fetchall()
    return [(str(key), float(at)) for key, at in reversed(rows)]


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
        self.seen = SeenCache(config.max_keys)
        self.timed = TimedSeen(config.window, config.max_keys) if config.window is not None else None
        self.state: StateFile | None = None
        self.clock: Callable[[], float] = time.time
        self.next_prune = 0.0

    async def start(self) -> None:
        """With a window: open the state file and take back the keys still fresh."""
        timed = self.timed
        if timed is None:
            return
        path = claim_path(self.data_dir, self.pattern, "dedupe")
        self.state = StateFile(path, SCHEMA)
        try:
            await self.state.open()
            rows = await self.state.run(_load, self.clock() - timed.window, timed.size)
        except BaseException:
            await self.close_state()
            raise
        for key, at in rows:
            timed.add(key, at)

    async def stop(self) -> None:
        await self.close_state()

    async def close_state(self) -> None:
        state, self.state = self.state, None
        if state is not None:
            try:
                await state.close()
            finally:
                release_path(state.path)

    def key(self, msg: Message) -> str:
        return msg.message_id if self.by_id else str(self.expr.evaluate(msg.to_context()))

    async def process(self, batch: list[Message]) -> StepResult:
        if self.timed is not None:
            return self.process_timed(batch)
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
        self.count_dropped(len(batch) - len(passed) - len(failed))
        return StepResult(passed, failed)

    def process_timed(self, batch: list[Message]) -> StepResult:
        timed = self.timed
        assert timed is not None
        now = self.clock()
        passed: list[Message] = []
        failed: list[tuple[Message, list[str]]] = []
        batch_keys: set[str] = set()
        for msg in batch:
            try:
                key = self.key(msg)
            except Exception as exc:  # noqa: BLE001  (CEL evaluation error)
                failed.append((msg, [f"dedupe: cannot evaluate key: {exc}"]))
                continue
            if key in batch_keys or timed.fresh(key, now):
                continue
            batch_keys.add(key)
            passed.append(msg)
        self.count_dropped(len(batch) - len(passed) - len(failed))
        return StepResult(passed, failed)

    def count_dropped(self, dropped: int) -> None:
        if dropped:
            MESSAGES.labels(self.pattern or "-", "dedupe", "duplicate").inc(dropped)
            if self.events is not None:
                for _ in range(dropped):
                    self.events.rejected(self.pattern, "duplicate: already accepted")

    def committed(self, messages: list[Message]) -> None:
        """Remember the keys of messages now durable."""
        if self.timed is not None:
            self.committed_timed(messages)
        elif self.by_id:
            self.seen.add_many(msg.message_id for msg in messages)
        else:
            self.seen.add_many(self.key(msg) for msg in messages)

    def committed_timed(self, messages: list[Message]) -> None:
        timed = self.timed
        assert timed is not None
        now = self.clock()
        rows = []
        for msg in messages:
            try:
                key = self.key(msg)
            except Exception:  # noqa: BLE001  (a later step changed what the key reads)
                continue
            timed.add(key, now)
            rows.append((key, now))
        # expired keys leave memory and the file from time to time, not on every batch
        before = None
        if now >= self.next_prune:
            self.next_prune = now + min(timed.window, 60.0)
            timed.expire(now)
            before = now - timed.window
        if self.state is not None and (rows or before is not None):
            self.state.submit(_save, rows, before, timed.size)
