"""One running pattern: ingest (wrap, process, route, enqueue) and its outputs' deliveries
(runtime/delivery.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from wireway import envelope
from wireway.config.model import Pattern
from wireway.connectors.base import IngestResult, Input, Rejected
from wireway.envelope import Message
from wireway.errors import BackpressureError
from wireway.observability import logging as log
from wireway.observability.events import Events
from wireway.observability.metrics import (
    MESSAGES,
)
from wireway.processors.base import Processor
from wireway.registry import lookup
from wireway.runtime.delivery import Delivery
from wireway.runtime.routing import choose_outputs, context_builder
from wireway.runtime.store import DeadLetter, Item, Store

logger = log.get("runtime")


class PatternRunner:
    """Builds a pattern's inputs, steps and outputs and moves messages between them."""

    def __init__(
        self,
        pattern: Pattern,
        store: Store,
        memory: Store | None = None,
        events: Events | None = None,
        keeper: Store | None = None,
    ) -> None:
        self.pattern = pattern
        self.name = pattern.name
        self.store = store
        self.memory = memory or store
        # where inputs' read positions are kept: with the messages in a durable store,
        # else (`buffer: memory`) in the engine's durable store if it has one
        self.keeper = store if store.durable else keeper
        self.events = events or Events()  # the engine's: its applications listen there
        self.inputs: list[Input] = []
        self.routes: list[Delivery] = []
        self.counts = {"in": 0, "out": 0, "error": 0, "filtered": 0}
        self.tasks: list[asyncio.Task[None]] = []
        self.started = 0.0
        self.on_dlq: Any = None
        self._acks: set[asyncio.Task[None]] = set()
        self._in = MESSAGES.labels(self.name, "ingest", "accepted")
        for iface in pattern.inputs:
            spec = lookup("input", iface.type)
            assert spec is not None
            self.inputs.append(spec.cls(iface.config, iface, pattern))
        for iface in pattern.outputs:
            spec = lookup("output", iface.type)
            assert spec is not None
            self.routes.append(Delivery(self, iface, spec.cls(iface.config, iface, pattern)))
        self.context_of = context_builder(
            {name for r in self.routes if r.iface.when is not None for name in r.iface.when.names}
        )
        self.lossy = any(r.store is not self.store for r in self.routes)
        self.steps: list[Processor] = [s.instance for s in pattern.steps]
        for step in self.steps:
            step.events = self.events
            step.publish = self.publish
        # only the steps that do something once their messages are durable (dedupe)
        self.committed_hooks = [
            step.committed for step in self.steps if type(step).committed is not Processor.committed
        ]

    def ack(self, store: Store, ids: list[int]) -> None:
        """Delete delivered items from the store without holding up delivery."""
        task = asyncio.create_task(store.ack(ids))
        self._acks.add(task)
        task.add_done_callback(self._ack_done)

    def _ack_done(self, task: asyncio.Task[None]) -> None:
        self._acks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the items stay in the store and are delivered again after a restart
            logger.error("could not delete delivered items", error=str(task.exception()))

    async def flush_acks(self) -> None:
        if self._acks:
            await asyncio.gather(*self._acks, return_exceptions=True)

    def refresh_dlq(self) -> None:
        if self.on_dlq is not None:
            self.on_dlq(self.name)

    # ----- ingest path -------------------------------------------------------------
    async def ingest(
        self,
        values: list[Any],
        *,
        source: str,
        reject_invalid: bool = False,
        keep_valid: bool = False,
        wait: bool = True,
        errors: list[tuple[Any, str]] | None = None,
        position: tuple[str, bytes] | None = None,
    ) -> IngestResult:
        """Wrap, process and route values; returns once the accepted ones are durable.

        Rejected values go to the DLQ, or with `reject_invalid` come back in
        `rejected` (the sender is told) and then nothing is kept, unless also
        `keep_valid`: the valid values are kept all the same (an input answering
        per value, e.g. a batch route reporting each item).

        `position` (key, value) is where the input has read up to once these values
        are taken (a file's offset): stored in the same commit as the messages, and
        read back with `position(key)` when the input starts again."""
        t0 = time.time()
        arrived = envelope.now_rfc3339()
        result = IngestResult()
        msgs: list[Message] = []
        index: dict[str, int] = {}
        for raw, reason in errors or []:  # values the input could not even decode
            self.events.rejected(self.name, reason)
            result.rejected.append(Rejected(-1, [reason], raw))
        for i, value in enumerate(values):
            if type(value) is Message:  # built by the input (its id already chosen)
                if not value.timestamp:
                    value.timestamp = arrived
                index.setdefault(value.message_id, i)
                msgs.append(value)
                continue
            try:
                msg = envelope.from_value(value, source=source, arrived=arrived)
            except ValueError as exc:
                self.events.rejected(self.name, str(exc))
                result.rejected.append(Rejected(i, [str(exc)], value))
                continue
            index.setdefault(msg.message_id, i)
            msgs.append(msg)
        emitted: list[Message] = []  # new messages of the steps: they skip the later steps
        for step in self.steps:
            if not msgs:
                break
            outcome = await step.process(msgs)
            passed, failed = outcome.passed, outcome.failed
            # a step may pass more than it took (split): only a shortfall was filtered
            result.filtered += max(0, len(msgs) - len(passed) - len(failed))
            for msg, reasons in failed:
                self.events.rejected(self.name, "; ".join(reasons))
                i = index.get(msg.message_id, -1)
                result.rejected.append(Rejected(i, reasons, msg.payload, msg))
            if outcome.emitted:
                emitted += outcome.emitted
            msgs = passed
        if result.rejected:
            if reject_invalid:
                result.rejected.sort(key=lambda r: r.index)
                MESSAGES.labels(self.name, "ingest", "rejected").inc(len(result.rejected))
                if not keep_valid:
                    return result
            else:
                await self._dead_letter_ingest(result, source, arrived)
        if result.filtered:
            MESSAGES.labels(self.name, "ingest", "filtered").inc(result.filtered)
            self.counts["filtered"] += result.filtered
        positions = {f"{self.name}/{position[0]}": position[1]} if position is not None else None
        await self._enqueue(msgs + emitted if emitted else msgs, wait, t0, positions)
        for committed in self.committed_hooks:
            committed(msgs)
        result.accepted = msgs
        self.counts["in"] += len(msgs)
        self._in.inc(len(msgs))
        if logger.is_enabled_for(logging.DEBUG):
            for msg in msgs:
                logger.debug(
                    "accepted",
                    pattern=self.name,
                    message_id=msg.message_id,
                    correlation_id=msg.metadata.correlation_id,
                )
        return result

    async def publish(self, msgs: list[Message]) -> None:
        """Route messages no input brought (an application's own: an alert acknowledged
        through its API) and put them in the outboxes; returns once they are durable."""
        if msgs:
            await self._enqueue(msgs, True, time.time())

    def position(self, key: str) -> bytes | None:
        """Where an input of this pattern had read up to under `key` (see `ingest`)."""
        return self.keeper.position(f"{self.name}/{key}") if self.keeper is not None else None

    async def _enqueue(
        self, msgs: list[Message], wait: bool, t0: float, positions: dict[str, bytes] | None = None
    ) -> None:
        """Route messages and put them in their outputs' queues, durably."""
        entries, idle = self.route(msgs)
        held = await self._room(entries, wait)
        placed: set[str] = set()  # queues that took their items before the commit

        def early(items: list[Item]) -> None:
            """Outputs get the messages while the outbox commit is under way: the
            commit's fsync is then not part of their latency. The sender is still only
            acknowledged after the commit; if it fails, the outputs may see messages
            the sender sends again (at-least-once, as after a crash). A queue that
            would let go of their messages (longer than keep_in_memory) gets them
            after the commit: delivery would read them back from the file."""
            for route, got in self._by_route(items, t0):
                if route.queue.fits_in_memory(len(got)):
                    route.queue.put(got)
                    placed.add(route.queue_name)

        try:
            items = await self.store.enqueue(
                [(route.queue_name, msg) for route, msg in entries if route.store is self.store],
                early,
                positions if self.keeper is self.store else None,
            )
            if self.lossy:  # outputs that chose `buffer: memory`
                items += await self.memory.enqueue(
                    [(route.queue_name, msg) for route, msg in entries if route.store is not self.store]
                )
            for route, got in self._by_route(items, t0):
                if route.queue_name not in placed:
                    route.queue.put(got)
            if positions and self.keeper is not None and self.keeper is not self.store:
                await self.keeper.enqueue([], None, positions)
        finally:
            for route, n in held.items():
                route.queue.unreserve(n)
        for route, n in idle.items():
            route.skipped(n)

    def _by_route(self, items: list[Item], arrived: float) -> list[tuple[Delivery, list[Item]]]:
        by_queue: dict[str, list[Item]] = {}
        for item in items:
            by_queue.setdefault(item.queue, []).append(item)
            item.arrived = arrived
        return [(r, by_queue[r.queue_name]) for r in self.routes if r.queue_name in by_queue]

    def route(self, msgs: list[Message]) -> tuple[list[tuple[Delivery, Message]], dict[Delivery, int]]:
        """(route, message) pairs to queue, and per output nobody listens to, how many
        messages it would have had (they count as delivered once the rest is stored)."""
        entries, idle, unrouted = choose_outputs(self.routes, msgs, self.context_of)
        if unrouted:
            MESSAGES.labels(self.name, "router", "unrouted").inc(unrouted)
        return entries, idle

    def full(self) -> bool:
        """Whether `ingest(wait=False)` may refuse messages now: an output's queue has no
        free place left. (Which outputs a message goes to is known only once it is
        decoded and processed, so any full queue counts.)"""
        return any(route.output.listening and route.queue.free() <= 0 for route in self.routes)

    async def _room(self, entries: list[tuple[Delivery, Message]], wait: bool) -> dict[Delivery, int]:
        """Wait for (or refuse without) room in each queue, and reserve it."""
        need: dict[Delivery, int] = {}
        for route, _ in entries:
            need[route] = need.get(route, 0) + 1
        held: dict[Delivery, int] = {}
        try:
            for route, n in need.items():
                queue = route.queue
                cap = queue.soft_capacity if wait else queue.capacity
                while queue.free(cap) < min(n, cap):
                    if not wait:
                        MESSAGES.labels(self.name, route.iface.name, "backpressure").inc(n)
                        raise BackpressureError(route.queue_name)
                    queue.room.clear()
                    await queue.room.wait()
                queue.reserve(n)
                held[route] = n
        except BaseException:
            for route, n in held.items():
                route.queue.unreserve(n)
            raise
        return held

    async def _dead_letter_ingest(
        self,
        result: IngestResult,
        source: str,
        arrived: str,
    ) -> None:
        letters = []
        for rej in result.rejected:
            msg = rej.message or envelope.Message(
                message_id=envelope.new_message_id(),
                timestamp=arrived,
                payload=rej.value,
                source=source,
                message_type="error",
            )
            letters.append(DeadLetter(msg, self.name, None, "; ".join(rej.reasons), 0))
        await self.store.dead_letter(letters)
        result.dead_lettered = len(letters)
        self.counts["error"] += len(letters)
        MESSAGES.labels(self.name, "ingest", "dead_letter").inc(len(letters))
        for letter in letters:
            logger.warning("rejected to DLQ", pattern=self.name, reason=letter.reason)
        self.refresh_dlq()

    # ----- lifecycle ---------------------------------------------------------------
    def restore(self, items: list[Item]) -> None:
        """Put items left in the store by an earlier run back in their queues."""
        for route in self.routes:
            mine = [it for it in items if it.queue == route.queue_name]
            route.queue.put(mine)
            route.update_gauges()

    async def start_outputs(self) -> None:
        for route in self.routes:
            await route.output.open()
            route.state = "running"
            # `parallel: N`: N loops take batches from the one queue (each take is
            # atomic on the loop), so N batches can be in flight at once
            for n in range(route.iface.parallel):
                name = f"wireway[{route.queue_name}].deliver" + (f"-{n}" if n else "")
                self.tasks.append(asyncio.create_task(route.deliver_forever(), name=name))

    async def start_inputs(self, make_ctx: Any) -> None:
        self.started = time.time()
        for step in self.steps:
            await step.start()
        for inp in self.inputs:
            await inp.start(make_ctx(self, inp))

    async def stop_inputs(self) -> None:
        for inp in self.inputs:
            try:
                await inp.stop()
            except Exception as exc:  # noqa: BLE001
                logger.warning("input stop failed", input=inp.name, error=str(exc))
        for step in self.steps:
            try:
                await step.stop()
            except Exception as exc:  # noqa: BLE001
                logger.warning("step stop failed", pattern=self.name, error=str(exc))

    def drained(self) -> bool:
        """Nothing left to deliver, or only for peers that are away (NotConnected): at
        shutdown there is no point waiting for those; it stays in the buffer for the
        next start."""
        return all(r.queue.depth == 0 or r.outage > 0 for r in self.routes)

    async def stop_outputs(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for route in self.routes:
            route.state = "stopped"
            try:
                await route.output.close()
            except Exception as exc:  # noqa: BLE001
                logger.warning("output close failed", output=route.queue_name, error=str(exc))

    def status(self, dlq_depth: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.pattern.info.type,
            "file": self.pattern.file,
            "state": "running" if self.tasks else "stopped",
            "uptime_seconds": round(time.time() - self.started, 1) if self.started else 0,
            "counts": {
                "in": self.counts["in"],
                "out": sum(r.delivered for r in self.routes),
                "error": self.counts["error"] + sum(r.failed for r in self.routes),
                "filtered": self.counts["filtered"],
            },
            "buffer_depth": sum(r.queue.depth for r in self.routes),
            "dlq_depth": dlq_depth,
            "inputs": [{"name": i.name, "type": i.iface.type, "state": i.state} for i in self.inputs],
            "outputs": [r.status() for r in self.routes],
        }
