"""`aggregate`: count, sum, min, max, mean and last of a field per key over time windows."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from wireway.envelope import Message, MessageType, stable_id
from wireway.errors import ConfigError
from wireway.expr import Expr, ExpressionError
from wireway.observability import logging as log
from wireway.processors.base import Processor, StepResult
from wireway.processors.state import StateFile, claim_path, release_path, transaction
from wireway.registry import register_processor

logger = log.get("aggregate")

Function = Literal["count", "sum", "min", "max", "mean", "last"]
NUMERIC = {"sum", "min", "max", "mean"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
  key TEXT NOT NULL, start REAL NOT NULL, acc TEXT NOT NULL, PRIMARY KEY (key, start)
);
"""


class AggregateConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `aggregate`.

    Messages are grouped by `key` into time windows of `window` seconds (by the
    time they reach the step): tumbling windows one after another, or with `slide`
    sliding windows that start every `slide` seconds (a message then counts in each
    window that covers it). When a window ends, a new message carries its result:
    `messageType` `message_type`, payload `{key, start, end, count, sum, min, max,
    mean, last}` (the `functions` asked for), and an id derived from the pattern,
    the window's length, the key and the window's start, so a result emitted again
    after a crash is the same message. It is emitted with the next batch that
    comes after the end, or by a timer when no traffic comes, and goes to the
    outputs chosen by their `when:`.

    Open windows are kept in the data folder (`state/<pattern>.aggregate.db`),
    written once the batch that changed them is in the outboxes, so a restart loses
    no open window (a crash may count a batch its input sends again twice:
    at-least-once). The inputs go on to the next steps (`inputs: pass`) or stop
    here (`inputs: drop`).
    """

    window: Annotated[float, Meta(gt=0, description="seconds each window lasts")]
    slide: Annotated[
        float | None, Meta(description="seconds between window starts (sliding windows; default: tumbling)")
    ] = None
    key: Annotated[str | None, Meta(description="CEL expression for the group (default: one group)")] = None
    field: Annotated[
        str | None, Meta(description="CEL expression for the value (needed by all but `count`)")
    ] = None
    functions: Annotated[
        list[Function] | None,
        Meta(description="results to compute (default: `count`, and all six with a `field`)"),
    ] = None
    message_type: Annotated[MessageType, Meta(description="messageType of the results")] = "aggregate"
    inputs: Annotated[
        Literal["pass", "drop"], Meta(description="whether the inputs go on to the next steps")
    ] = "pass"
    on_error: Annotated[
        Literal["skip", "dlq"],
        Meta(description="a key or value that cannot be evaluated (or is not a number): `skip` it or `dlq`"),
    ] = "skip"

    def __post_init__(self) -> None:
        if self.slide is not None and not 0 < self.slide <= self.window:
            raise ValueError("Expected seconds > 0 and at most `window` - at `$.slide`")
        if self.functions is not None and not self.functions:
            raise ValueError("Expected at least one function - at `$.functions`")
        if self.field is None and set(self.functions or ["count"]) - {"count"}:
            raise ValueError("Expected a `field` for functions other than count - at `$.field`")


class Acc(msgspec.Struct, array_like=True):
    """The running result of one window."""

    count: int = 0
    sum: int | float = 0
    min: int | float | None = None
    max: int | float | None = None
    last: Any = None

    def add(self, value: Any, numeric: bool) -> None:
        self.count += 1
        self.last = value
        if numeric:
            self.sum += value
            self.min = value if self.min is None or value < self.min else self.min
            self.max = value if self.max is None or value > self.max else self.max


_encode = msgspec.json.Encoder().encode
_decode_acc = msgspec.json.Decoder(Acc).decode


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Row = tuple[str, float, bytes]  # (key as JSON, window start, result so far)


def _save(conn: sqlite3.Connection, rows: list[Row], gone: list[tuple[str, float]]) -> None:
    transaction(
        conn,
        [
            ("INSERT OR REPLACE INTO windows (key, start, acc) VALUES (?, ?, ?)", rows),
            ("DELETE FROM windows WHERE key = ? AND start = ?", gone),
        ],
    )


def _load(conn: sqlite3.Connection) -> list[Row]:
    return [(str(k), float(s), bytes(a)) for k, s, a in conn.execute("SELECT key, start, acc FROM windows")]


@register_processor("aggregate", config=AggregateConfig)
class Aggregate(Processor):
    """Compute results per key and time window; emit each when its window ends."""

    def __init__(self, config: AggregateConfig, *, base_dir: Path) -> None:
        self.key_expr = self._compile(config.key, "key")
        self.field_expr = self._compile(config.field, "field")
        functions = config.functions or (
            ["count", "sum", "min", "max", "mean", "last"] if config.field else ["count"]
        )
        self.functions: list[str] = list(dict.fromkeys(functions))
        self.numeric = bool(NUMERIC & set(self.functions))
        self.window = config.window
        self.slide = config.slide or config.window
        self.message_type = config.message_type
        self.pass_inputs = config.inputs == "pass"
        self.to_dlq = config.on_error == "dlq"
        # (key as JSON, window start) -> running result
        self.open: dict[tuple[str, float], Acc] = {}
        self.dirty: set[tuple[str, float]] = set()  # changed since last written
        self.gone: set[tuple[str, float]] = set()  # closed since last written
        self.clock: Callable[[], float] = time.time
        self.state: StateFile | None = None
        self.timer: asyncio.Task[None] | None = None

    @staticmethod
    def _compile(source: str | None, key: str) -> Expr | None:
        if source is None:
            return None
        try:
            return Expr(source)
        except ExpressionError as exc:
            raise ConfigError(str(exc), path=key) from exc

    # ----- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Open the state file, take back the open windows and start the timer."""
        self.state = StateFile(claim_path(self.data_dir, self.pattern, "aggregate"), SCHEMA)
        try:
            await self.state.open()
            rows = await self.state.run(_load)
        except BaseException:
            await self.stop()
            raise
        for key, start, acc in rows:
            self.open[(key, start)] = _decode_acc(acc)
        self.timer = asyncio.create_task(self.tick_forever(), name=f"wireway[{self.pattern}/aggregate].timer")

    async def stop(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            await self.publish_due()  # the outputs are still open: what ended goes out now
        self.write()
        state, self.state = self.state, None
        if state is not None:
            try:
                await state.close()
            finally:
                release_path(state.path)

    async def tick_forever(self) -> None:
        """Close the windows that ended while no batch came, and publish their results."""
        while True:
            now = self.clock()
            ends = [start + self.window for _, start in self.open]
            await asyncio.sleep(min(max(min(ends, default=now + 1) - now, 0.02), 1.0))
            await self.publish_due()

    async def publish_due(self) -> None:
        if self.publish is None:
            return
        closed = self.take_due(self.clock())
        if not closed:
            return
        try:
            await self.publish(self.results(closed))
        except asyncio.CancelledError:
            self.reopen(closed)
            raise
        except Exception as exc:  # noqa: BLE001  (outbox full or closing: the next tick tries again)
            logger.warning("could not publish window results", pattern=self.pattern, error=str(exc))
            self.reopen(closed)
            return
        self.write()

    def reopen(self, closed: dict[tuple[str, float], Acc]) -> None:
        """Windows whose results were not published: open (and to be written) again."""
        self.open.update(closed)
        self.gone -= closed.keys()
        self.dirty |= closed.keys()

    # ----- windows ---------------------------------------------------------------------
    def starts(self, t: float) -> list[float]:
        """Starts of the windows that cover time t."""
        last = math.floor(t / self.slide)
        first = math.floor((t - self.window) / self.slide) + 1
        return [k * self.slide for k in range(first, last + 1)]

    def take_due(self, now: float) -> dict[tuple[str, float], Acc]:
        """Remove and return the windows whose end has come."""
        due = {ks: acc for ks, acc in self.open.items() if ks[1] + self.window <= now}
        for ks in due:
            del self.open[ks]
            self.dirty.discard(ks)
            self.gone.add(ks)
        return due

    def results(self, closed: dict[tuple[str, float], Acc]) -> list[Message]:
        out = []
        for (key, start), acc in sorted(closed.items(), key=lambda item: (item[0][1], item[0][0])):
            end = start + self.window
            payload: dict[str, Any] = {}
            if self.key_expr is not None:
                payload["key"] = msgspec.json.decode(key)
            payload["start"], payload["end"] = iso(start), iso(end)
            for name in self.functions:
                if name == "mean":
                    payload["mean"] = acc.sum / acc.count if acc.count else None
                else:
                    payload[name] = getattr(acc, name)
            out.append(
                Message(
                    message_id=stable_id(self.pattern, self.message_type, self.window, key, payload["start"]),
                    timestamp=payload["end"],
                    payload=payload,
                    source=self.pattern,
                    message_type=self.message_type,
                )
            )
        return out

    async def process(self, batch: list[Message]) -> StepResult:
        now = self.clock()
        emitted = self.results(self.take_due(now))
        starts = self.starts(now)
        failed: list[tuple[Message, list[str]]] = []
        for msg in batch:
            try:
                key, value = self.read(msg)
            except ValueError as exc:
                if self.to_dlq:
                    failed.append((msg, [f"aggregate: {exc}"]))
                continue
            for start in starts:
                ks = (key, start)
                acc = self.open.get(ks)
                if acc is None:
                    acc = self.open[ks] = Acc()
                acc.add(value, self.numeric)
                self.dirty.add(ks)
        if not self.pass_inputs:
            return StepResult([], failed, emitted)
        if failed:
            refused = {id(m) for m, _ in failed}
            return StepResult([m for m in batch if id(m) not in refused], failed, emitted)
        return StepResult(list(batch), failed, emitted)

    def read(self, msg: Message) -> tuple[str, Any]:
        """(key as JSON, value) of a message; ValueError says what cannot be read."""
        ctx = msg.to_context() if self.key_expr is not None or self.field_expr is not None else {}
        key = value = None
        try:
            if self.key_expr is not None:
                key = self.key_expr.evaluate(ctx)
            if self.field_expr is not None:
                value = self.field_expr.evaluate(ctx)
        except Exception as exc:  # CEL evaluation error
            raise ValueError(f"cannot evaluate: {exc}") from exc
        if self.numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{self.field_expr.source if self.field_expr else 'field'} is not a number")
        try:
            return _encode(key).decode(), value
        except (TypeError, msgspec.EncodeError) as exc:
            raise ValueError(f"key cannot be encoded: {exc}") from exc

    def committed(self, messages: list[Message]) -> None:
        """The batches that changed windows are durable: write the windows."""
        self.write()

    def write(self) -> None:
        if not (self.dirty or self.gone):
            return
        rows = [(k, s, _encode(self.open[(k, s)])) for k, s in self.dirty]
        gone = list(self.gone)
        self.dirty, self.gone = set(), set()
        if self.state is not None:
            self.state.submit(_save, rows, gone)
