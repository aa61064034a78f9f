"""The `nats` input: a core subscription (at-most-once) or a JetStream durable pull
consumer (acknowledged once stored, `nak` when the buffer is full, `term` for dead letters)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from wireway.connectors.base import Input, InputContext
from wireway.connectors.nats.config import NatsInputConfig
from wireway.connectors.nats.link import MSG_ID, NATS_ERRORS, Link, describe, ensure_stream
from wireway.connectors.nats.pull import EXPIRES, Puller
from wireway.envelope import Message, is_envelope
from wireway.errors import BackpressureError
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("nats")


@register_input("nats", config=NatsInputConfig)
class NatsInput(Input):
    """Subscribe to a subject, or pull from a JetStream durable consumer."""

    config: NatsInputConfig
    formats = None

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.stopping = False
        self.codec = self.iface.new_codec()
        self.subscribed = asyncio.Event()
        self.link = Link(self.config, self.name, self._opened, self._closed)
        self.state = "connecting"
        self.link.start()
        body = self.pull if self.config.jetstream else self.subscribe
        self.task = asyncio.create_task(body(), name=f"wireway[{self.name}].consume")
        # a reachable server is consuming on return; an unreachable one is retried in
        # the background and never fails the start
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.connect_timeout):
                await self.subscribed.wait()

    async def stop(self) -> None:
        self.state = "stopped"
        if not hasattr(self, "task"):
            return
        self.stopping = True
        # let a batch being ingested finish and be acknowledged, briefly
        await asyncio.wait({self.task}, timeout=2.0)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.link.close()

    def health(self) -> dict[str, str]:
        link = getattr(self, "link", None)
        return {"nats": "up" if link is not None and link.up else "down"}

    def _opened(self) -> None:
        self.ctx.connection_opened("nats")
        if not self.stopping:
            self.state = "running"

    def _closed(self) -> None:
        self.ctx.connection_closed("nats")
        if not self.stopping:
            self.state = "connecting"

    def decode(self, msgs: list[Msg]) -> tuple[list[Any], list[int], list[tuple[Any, str]], set[int]]:
        """Values, the message each came from, errors for the DLQ, and the messages with one."""
        values: list[Any] = []
        owner: list[int] = []
        errors: list[tuple[Any, str]] = []
        bad: set[int] = set()
        for n, msg in enumerate(msgs):
            records = self.codec.decode(msg.data, f"subject {msg.subject}")
            for record in records:
                if record.error is not None:
                    errors.append((msg.data.decode("utf-8", "replace"), record.error))
                    bad.add(n)
                    continue
                value = record.value
                msg_id = msg.headers.get(MSG_ID) if msg.headers else None
                if msg_id and len(records) == 1 and not is_envelope(value):
                    # the publisher's id: a redelivered copy keeps it
                    value = Message(message_id=msg_id, timestamp="", payload=value, source=self.name)
                values.append(value)
                owner.append(n)
        return values, owner, errors, bad

    # ----- core NATS --------------------------------------------------------------
    async def subscribe(self) -> None:
        await self.link.connected.wait()
        assert self.link.client is not None
        pending: list[Msg] = []
        wake = asyncio.Event()

        async def received(msg: Msg) -> None:
            pending.append(msg)
            wake.set()

        await self.link.client.subscribe(
            self.config.subject,
            queue=self.config.queue_group or "",
            cb=received,
            pending_msgs_limit=self.config.pending_limit,
        )
        self.subscribed.set()
        limit = self.pattern.settings.buffer_size
        while not self.stopping:
            await wake.wait()
            wake.clear()
            while pending and not self.stopping:
                batch = pending[:limit]
                del pending[:limit]
                values, _, errors, _ = self.decode(batch)
                try:
                    await self.ctx.ingest(values, source=self.name, errors=errors)
                except Exception as exc:  # noqa: BLE001  (core NATS cannot redeliver: say so)
                    logger.error("nats messages lost", input=self.name, count=len(batch), error=describe(exc))

    # ----- JetStream --------------------------------------------------------------
    async def bind(self) -> str:
        """The durable consumer's name, once it exists (created first when asked)."""
        cfg = self.config
        assert cfg.stream is not None
        durable = cfg.durable or f"wireway-{self.pattern.name}"
        js = self.link.jetstream()
        if cfg.create:
            await ensure_stream(js, cfg, [cfg.subject])
        try:
            await js.consumer_info(cfg.stream, durable)
        except nats.js.errors.NotFoundError:
            if not cfg.create:
                raise
            await js.add_consumer(
                cfg.stream,
                ConsumerConfig(
                    durable_name=durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=cfg.ack_wait,
                    max_deliver=cfg.max_deliver,
                    filter_subject=cfg.subject,
                    max_ack_pending=max(1000, 2 * cfg.batch),
                ),
            )
        return durable

    async def pull(self) -> None:
        await self.link.connected.wait()
        while not self.stopping:
            try:
                durable = await self.bind()
                break
            except NATS_ERRORS as exc:
                logger.error("nats consumer not available; retrying", input=self.name, error=describe(exc))
                await asyncio.sleep(max(1.0, self.config.reconnect_wait))
        else:
            return
        assert self.link.client is not None
        assert self.config.stream is not None
        pending: list[Msg] = []
        wake = asyncio.Event()

        def received(msg: Msg) -> None:
            pending.append(msg)
            wake.set()

        puller = Puller(self.link.client, self.config.stream, durable, self.config.batch, received)
        await puller.start()
        self.subscribed.set()
        # half the window per ingest call: the other half arrives meanwhile
        limit = max(1, self.config.batch // 2)
        try:
            while not self.stopping:
                with contextlib.suppress(*NATS_ERRORS):
                    await puller.request(len(pending))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(EXPIRES):
                        await wake.wait()
                wake.clear()
                while pending and not self.stopping:
                    chunk = pending[:limit]
                    del pending[:limit]
                    with contextlib.suppress(*NATS_ERRORS):
                        await puller.request(len(pending) + len(chunk))
                    await self.take(chunk)
        finally:
            with contextlib.suppress(*NATS_ERRORS):
                await puller.stop()
        # received and not acknowledged: JetStream redelivers them after ack_wait

    async def take(self, msgs: list[Msg]) -> None:
        """Ingest one fetched batch, then ack, term or nak each message."""
        if self.ctx.full():
            await self.nak(msgs)
            return
        values, owner, errors, bad = self.decode(msgs)
        try:
            result = await self.ctx.ingest(values, source=self.name, errors=errors, wait=False)
        except BackpressureError:
            await self.nak(msgs)
            return
        except Exception as exc:  # noqa: BLE001  (JetStream offers them again)
            logger.error("nats ingest failed", input=self.name, error=describe(exc))
            await self.nak(msgs)
            return
        for rejected in result.rejected:
            if 0 <= rejected.index < len(owner):
                bad.add(owner[rejected.index])
        term = self.config.dead_letters == "term"
        try:
            for n, msg in enumerate(msgs):
                await (msg.term() if term and n in bad else msg.ack())
        except NATS_ERRORS as exc:  # the connection is away: JetStream redelivers
            logger.warning("nats ack failed; JetStream will redeliver", input=self.name, error=describe(exc))

    async def nak(self, msgs: list[Msg]) -> None:
        """The buffer is full: JetStream offers them again after `nak_delay`."""
        with contextlib.suppress(*NATS_ERRORS):
            for msg in msgs:
                await msg.nak(delay=self.config.nak_delay or None)
        await asyncio.sleep(min(self.config.nak_delay, 0.5))  # let the outputs drain
