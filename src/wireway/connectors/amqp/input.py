"""The `amqp` input: consume a queue, ingest in batches, `basic.ack` after the commit."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from aio_pika.abc import AbstractConnection
from aiormq.abc import DeliveredMessage
from aiormq.channel import Channel

from wireway.connectors.amqp.config import AmqpInputConfig
from wireway.connectors.amqp.link import AMQP_ERRORS, Backoff, closed_event, connect, declare, describe
from wireway.connectors.base import Input, InputContext
from wireway.envelope import Message, is_envelope
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("amqp")


@register_input("amqp", config=AmqpInputConfig)
class AmqpInput(Input):
    """Consume a RabbitMQ queue; acknowledge each delivery once it is stored."""

    config: AmqpInputConfig
    formats = None

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.up = False
        self.stopping = False
        self.ready = asyncio.Event()
        self.state = "connecting"
        self.task = asyncio.create_task(self.run(), name=f"wireway[{self.name}].consume")
        # a reachable broker is consuming on return; an unreachable one is retried in
        # the background and never fails the start
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.connect_timeout):
                await self.ready.wait()

    async def stop(self) -> None:
        self.state = "stopped"
        if not hasattr(self, "task"):
            return
        self.stopping = True
        wake: asyncio.Event | None = getattr(self, "wake", None)
        if wake is not None:
            wake.set()
        # let a batch being ingested finish and be acknowledged, briefly
        await asyncio.wait({self.task}, timeout=2.0)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def health(self) -> dict[str, str]:
        return {"amqp": "up" if self.up else "down"}

    async def run(self) -> None:
        backoff = Backoff(self.config)
        while not self.stopping:
            try:
                connection = await connect(self.config, self.name)
            except AMQP_ERRORS as exc:
                logger.warning("amqp connect failed; retrying", input=self.name, error=describe(exc))
                self.ready.set()  # the first attempt is over
                await backoff.sleep()
                continue
            try:
                await self.session(connection, backoff)
            except AMQP_ERRORS as exc:
                if not self.stopping:
                    logger.warning("amqp connection lost; reconnecting", input=self.name, error=describe(exc))
            except Exception as exc:  # noqa: BLE001  (the broker redelivers what was not acknowledged)
                logger.error(
                    "amqp ingest failed; reconnecting so the broker redelivers",
                    input=self.name,
                    error=describe(exc),
                )
            finally:
                if self.up:
                    self.up = False
                    self.ctx.connection_closed("amqp")
                if not self.stopping:
                    self.state = "connecting"
                with contextlib.suppress(*AMQP_ERRORS, asyncio.CancelledError):
                    await asyncio.wait_for(connection.close(), 2.0)
            self.ready.set()
            if not self.stopping:
                await backoff.sleep()

    async def session(self, connection: AbstractConnection, backoff: Backoff) -> None:
        """Consume on one connection until it closes (or the input stops)."""
        cfg = self.config
        channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=cfg.prefetch)
        await declare(cfg, channel, cfg.queue if cfg.declare else None, cfg.routing_key)
        await channel.get_queue(cfg.queue, ensure=True)  # a clear error when it is missing
        # consumed on aiormq's channel: its deliveries are lighter than aio-pika's messages
        underlay = cast(Channel, await channel.get_underlay_channel())
        closed = closed_event(connection, channel)

        def cancelled(frame: Any) -> None:
            # the broker ended the consumer (its queue was deleted): start over, so that
            # a missing queue is reported and retried like a lost connection
            logger.warning("amqp consumer cancelled by the broker", input=self.name)
            closed.set()

        underlay.on_consumer_cancel_callbacks.add(cancelled)
        pending: list[DeliveredMessage] = []
        self.wake = wake = asyncio.Event()
        closed_waiter = asyncio.create_task(closed.wait())
        closed_waiter.add_done_callback(lambda _: wake.set())

        async def received(message: DeliveredMessage) -> None:
            pending.append(message)
            wake.set()

        codec = self.iface.new_codec()
        try:
            await underlay.basic_consume(cfg.queue, received, no_ack=False)
            self.up = True
            self.state = "running"
            self.ctx.connection_opened("amqp")
            backoff.reset()
            self.ready.set()
            # half the window per ingest call: the broker fills the other half meanwhile
            limit = max(1, min(cfg.prefetch // 2, self.pattern.settings.buffer_size))
            while not self.stopping and not closed.is_set():
                await wake.wait()
                wake.clear()
                while pending and not self.stopping and not closed.is_set():
                    batch = pending[:limit]
                    del pending[:limit]
                    await self.take(underlay, batch, codec)
        finally:
            closed_waiter.cancel()
        # the deliveries not acknowledged are redelivered by the broker

    async def take(self, channel: Channel, batch: list[DeliveredMessage], codec: Any) -> None:
        """Ingest one batch, then settle each delivery: ack, or reject what was dead-lettered."""
        values: list[Any] = []
        owner: list[int] = []  # the delivery each value came from
        errors: list[tuple[Any, str]] = []
        bad: set[int] = set()
        where = f"queue {self.config.queue}"
        for n, message in enumerate(batch):
            records = codec.decode(message.body, where)
            for record in records:
                if record.error is not None:
                    errors.append((message.body.decode("utf-8", "replace"), record.error))
                    bad.add(n)
                    continue
                value = record.value
                message_id = message.header.properties.message_id
                if message_id and len(records) == 1 and not is_envelope(value):
                    # the publisher's id: a redelivered copy keeps it
                    value = Message(message_id=message_id, timestamp="", payload=value, source=self.name)
                values.append(value)
                owner.append(n)
        result = await self.ctx.ingest(values, source=self.name, errors=errors)
        for rejected in result.rejected:
            if 0 <= rejected.index < len(owner):
                bad.add(owner[rejected.index])
        await self.settle(channel, batch, bad)

    async def settle(self, channel: Channel, batch: list[DeliveredMessage], bad: set[int]) -> None:
        reject = self.config.dead_letters == "reject"
        last_ok = 0
        try:
            for n, message in enumerate(batch):
                tag = message.delivery_tag or 0
                if reject and n in bad:
                    await channel.basic_reject(tag, requeue=False, wait=False)
                else:
                    last_ok = tag
            if last_ok:
                # every earlier delivery of this channel is settled: one ack covers the batch
                await channel.basic_ack(last_ok, multiple=True, wait=False)
        except AMQP_ERRORS as exc:  # the channel closed: the broker redelivers
            logger.warning("amqp ack failed; the broker will redeliver", input=self.name, error=describe(exc))
