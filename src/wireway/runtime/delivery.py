"""Delivery to one output: its queue, breaker and delivery loop (retries with backoff,
the DLQ after the last retry or at TTL expiry)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from wireway.config.model import Interface, Pattern
from wireway.connectors.base import Output
from wireway.envelope import Message
from wireway.errors import NotConnected, PermanentError, RetryableError
from wireway.observability import logging as log
from wireway.observability.events import Events
from wireway.observability.metrics import (
    BREAKER_STATE,
    LATENCY,
    MESSAGES,
    QUEUE_SIZE,
    QUEUE_SIZE_ALIAS,
    observe_many,
)
from wireway.runtime.backoff import backoff
from wireway.runtime.breaker import Breaker
from wireway.runtime.queue import OutputQueue
from wireway.runtime.store import DeadLetter, Item, Store

logger = log.get("runtime")


def message(item: Item) -> Message:
    """The message of an item that is being delivered (so it was loaded)."""
    assert item.message is not None, "deliver only loaded items"
    return item.message


class Owner(Protocol):
    """What a delivery needs of the pattern runner it belongs to."""

    name: str
    pattern: Pattern
    store: Store
    memory: Store
    events: Events

    def ack(self, store: Store, ids: list[int]) -> None: ...

    def refresh_dlq(self) -> None: ...


class Delivery:
    """An output with its queue, breaker and delivery loop."""

    def __init__(self, runner: Owner, iface: Interface, output: Output) -> None:
        self.runner = runner
        self.iface = iface
        self.output = output
        self.events = runner.events
        self.queue_name = f"{runner.name}/{iface.name}"
        self.store = runner.memory if iface.buffer == "memory" else runner.store
        settings = runner.pattern.settings
        keep = settings.keep_in_memory if self.store.durable else None
        self.queue = OutputQueue(self.queue_name, settings.buffer_size, keep)
        self.breaker = Breaker(settings.breaker_threshold, settings.breaker_timeout)
        self.outage = 0  # deliveries in a row that found the peer away (NotConnected)
        self.delivered = 0
        self.failed = 0
        self.last_error = ""
        self.state = "stopped"
        self._counter = MESSAGES.labels(runner.name, iface.name, "delivered")
        self._gauge = QUEUE_SIZE.labels(self.queue_name)
        self._alias = QUEUE_SIZE_ALIAS.labels(self.queue_name)
        self._breaker_gauge = BREAKER_STATE.labels(self.queue_name)

    def status(self) -> dict[str, Any]:
        return {
            "name": self.iface.name,
            "type": self.iface.type,
            "state": self.state,
            "delivered": self.delivered,
            "errors": self.failed,
            "buffer_depth": self.queue.depth,
            "breaker": self.breaker.state,
            "last_error": self.last_error,
        }

    def update_gauges(self) -> None:
        self._gauge.set(self.queue.depth)
        self._alias.set(self.queue.depth)
        self._breaker_gauge.set(0 if self.breaker.state == "closed" else 1)

    async def deliver_forever(self) -> None:
        """Drain the queue in batches: retries with backoff, the breaker, the DLQ."""
        settings = self.runner.pattern.settings
        while True:
            await self.queue.ready.wait()
            size = self.iface.batch_size or settings.batch_size
            if self.iface.linger and len(self.queue) < size:
                # `linger`: a fuller batch later rather than a small one now, for a peer
                # whose cost is per batch (a transaction) and whose readers can wait
                await asyncio.sleep(self.iface.linger)
            wait = self.breaker.wait()
            if wait > 0:
                self.state = "open"
                self.update_gauges()
                await asyncio.sleep(wait)
                continue
            batch = self.queue.take(1 if self.breaker.state == "half-open" else size)
            if not batch:
                continue
            try:
                await self.store.load(batch)  # messages that waited in the file alone
            except Exception as exc:  # noqa: BLE001  (they stay queued: try again later)
                logger.error("cannot read queued messages back", output=self.queue_name, error=str(exc))
                self.queue.retry(batch)
                await asyncio.sleep(settings.backoff_max)
                continue
            now = time.time()
            expired = [it for it in batch if message(it).expired(now)]
            if expired:
                batch = [it for it in batch if not message(it).expired(now)]
                await self.dead_letter(expired, "expired")
                if not batch:
                    continue
            try:
                refused = await asyncio.wait_for(
                    self.output.write([message(it) for it in batch]), settings.timeout
                )
            except asyncio.CancelledError:
                self.queue.retry(batch)
                raise
            except PermanentError as exc:
                self.breaker.success()  # the peer answered: it is up
                await self.dead_letter(batch, str(exc) or type(exc).__name__)
                continue
            except Exception as exc:  # noqa: BLE001
                await self.failed_attempt(batch, exc)
                continue
            self.breaker.success()
            self.state = "running"
            self.outage = 0
            if refused:
                for i, reason in refused.items():
                    await self.dead_letter([batch[i]], reason)
                batch = [it for i, it in enumerate(batch) if i not in refused]
            self.confirm(batch)
            self.runner.ack(self.store, [it.id for it in batch])

    def skipped(self, count: int) -> None:
        """`count` messages for an output that is not listening (see Output.listening)."""
        if count:
            self.delivered += count
            self._counter.inc(count)

    def confirm(self, batch: list[Item]) -> None:
        self.queue.done(len(batch))
        self.delivered += len(batch)
        self._counter.inc(len(batch))
        done_at = time.time()
        # items restored from the store at start have no arrival time in this process
        latencies = [max(done_at - it.arrived, 0.0) for it in batch if it.arrived]
        observe_many(LATENCY, latencies)
        self.events.delivered(self.runner.name, self.iface.name, latencies)
        if logger.is_enabled_for(logging.DEBUG):
            for it in batch:
                logger.debug(
                    "delivered",
                    output=self.queue_name,
                    message_id=message(it).message_id,
                    correlation_id=message(it).metadata.correlation_id,
                )
        # queue gauges are set when /metrics is read and once a second (Engine.poll),
        # not per batch: three locked gauge writes per output per batch added up

    async def failed_attempt(self, batch: list[Item], exc: BaseException) -> None:
        settings = self.runner.pattern.settings
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"timeout after {settings.timeout}s"
        self.last_error = reason
        self.breaker.failure()
        self.state = self.breaker.state if self.breaker.state != "closed" else "retrying"
        MESSAGES.labels(self.runner.name, self.iface.name, "retry").inc(len(batch))
        logger.warning("delivery failed", output=self.queue_name, error=reason, batch=len(batch))
        if isinstance(exc, NotConnected):
            # the peer is away, so nothing was refused: the batch waits in the buffer for
            # it however long that takes, with backoff (and the breaker), and spends none
            # of its `retries`, which are for attempts the peer saw and failed
            self.outage += 1
            self.queue.retry(batch)
            delay = backoff(self.outage, settings.backoff_base, settings.backoff_max)
            self.update_gauges()
            await asyncio.sleep(delay)
            return
        give_up = [it for it in batch if it.attempts >= settings.retries]
        again = [it for it in batch if it.attempts < settings.retries]
        for it in again:
            it.attempts += 1
            message(it).metadata.retry_count = it.attempts
        if give_up:
            await self.dead_letter(give_up, reason)
        if again:
            self.queue.retry(again)
            delay = backoff(again[0].attempts, settings.backoff_base, settings.backoff_max)
            if isinstance(exc, RetryableError) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            self.update_gauges()
            await asyncio.sleep(delay)

    async def dead_letter(self, items: list[Item], reason: str) -> None:
        letters = [
            DeadLetter(message(it), self.runner.name, self.queue_name, reason, it.attempts + 1)
            for it in items
        ]
        if self.store is self.runner.store:
            await self.store.dead_letter(letters, [it.id for it in items])
        else:  # the DLQ stays durable even for an output buffered in memory
            await self.runner.store.dead_letter(letters)
            await self.store.ack([it.id for it in items])
        for it in items:
            logger.warning(
                "dead-lettered",
                output=self.queue_name,
                message_id=message(it).message_id,
                correlation_id=message(it).metadata.correlation_id,
                reason=reason,
            )
        self.queue.done(len(items))
        self.failed += len(items)
        MESSAGES.labels(self.runner.name, self.iface.name, "dead_letter").inc(len(items))
        self.runner.refresh_dlq()
        self.update_gauges()
