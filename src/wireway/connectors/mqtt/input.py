"""The `mqtt` input: subscribe, ingest each read's messages as one batch, and
acknowledge them to the broker only once they are in their outboxes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import msgspec

from wireway.connectors.base import Input, InputContext
from wireway.connectors.mqtt.brokerwatch import DROPPED_TOPIC, SYS_PREFIX, BrokerWatch
from wireway.connectors.mqtt.config import MqttInputConfig
from wireway.connectors.mqtt.inbound import Subscriber
from wireway.connectors.mqtt.session import Session
from wireway.connectors.mqtt.skip import TooLarge
from wireway.connectors.mqtt.wire import Publish
from wireway.envelope import Message, canonical_timestamp, is_envelope, new_message_id, stable_id
from wireway.errors import BackpressureError
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("mqtt")
_decode = msgspec.json.Decoder().decode

STALL_SECONDS = 0.1  # an ingest call taking longer waits for room: reading stops
PIPELINE = 2  # ingest calls in flight

# Fixed forever: `id_fields` ids must stay the same across versions and restarts.

Received = tuple[int, Publish]  # (connection generation, PUBLISH)


def _id_part(value: Any) -> str:
    """A timestamp in its canonical form (so 18:33:58Z and 18:33:58.000+00:00 agree)."""
    if isinstance(value, str):
        # only a text shaped like 2025-10-16T... can be one: skip the raise for a device id
        if len(value) < 19 or value[4] != "-" or value[10] not in "Tt ":
            return value
        try:
            return canonical_timestamp(value)
        except (ValueError, OverflowError):  # e.g. year 1 with a +14:00 offset
            return value
    return str(value)


def _text(value: Any) -> str:
    """How a payload value compares with a topic level."""
    return value if isinstance(value, str) else json.dumps(value)


class InputLink(Subscriber):
    """The input's connection: hands each read's messages to the input."""

    def __init__(self, owner: MqttInput, config: MqttInputConfig, session: Session) -> None:
        topics = [f"$share/{config.shared_group}/{t}" if config.shared_group else t for t in config.topics]
        watch = (DROPPED_TOPIC,) if config.broker_stats else ()
        super().__init__(config, session, owner.pattern.base_dir, owner.name, topics, config.qos, watch)
        self.owner = owner
        self.counted = False
        self.drops = BrokerWatch(owner.name)

    def ready(self, session_present: bool, codes: list[int]) -> None:
        self.owner.ctx.connection_opened("mqtt")
        self.counted = True
        refused = [t for t, code in zip(self.topics, codes, strict=False) if code >= 0x80]
        if refused:
            logger.error("mqtt subscription refused", input=self.label, topics=refused)
        self.owner.state = "running"

    def received(self, publishes: list[Publish]) -> None:
        gen = self.generation
        if self.watch:  # the broker's counters come on the same connection (QoS 0)
            for m in publishes:
                if m[0].startswith(SYS_PREFIX):
                    self.drops.update(m[0], m[1])
            publishes = [m for m in publishes if not m[0].startswith(SYS_PREFIX)]
            if not publishes:
                return
        self.owner.received([(gen, m) for m in publishes])

    def lost(self, reason: str) -> None:
        if self.counted:
            self.counted = False
            self.owner.ctx.connection_closed("mqtt")
        if self.owner.state != "stopped":
            self.owner.state = "connecting"


@register_input("mqtt", config=MqttInputConfig)
class MqttInput(Input):
    """Subscribe to MQTT topics; PUBACK once a message is in its outboxes."""

    config: MqttInputConfig
    formats = None  # any: each PUBLISH's payload is one unit of it

    async def start(self, ctx: InputContext) -> None:
        cfg = self.config
        self.ctx = ctx
        # json through msgspec directly (the hot path); any other format through its codec
        self.codec = None if self.iface.format in ("json", "jsonl") else self.iface.new_codec()
        self.pending: list[Received] = []
        self.loop = asyncio.get_running_loop()
        self.since = 0.0  # loop time the oldest pending message was read
        self.ingesting = 0  # messages in ingest calls, not yet acknowledged
        self.stalled = 0  # ingest calls waiting for room in a full buffer
        self.wake = asyncio.Event()
        self.stopping = False
        # two calls in flight: one decodes and routes while the other waits for its
        # commit, so smaller batches than the whole window
        self.batch_limit = max(1, min(cfg.max_inflight // PIPELINE, self.pattern.settings.buffer_size))
        self.slots = asyncio.Semaphore(PIPELINE)
        self.calls: set[asyncio.Task[None]] = set()
        session = Session(
            client_id=cfg.client_id or f"wireway-{self.pattern.name}",
            clean=cfg.clean_session,
            session_expiry=cfg.session_expiry,
            receive_maximum=cfg.receive_maximum,
        )
        self.link = InputLink(self, cfg, session)
        self.state = "connecting"
        self.consumer = asyncio.create_task(self.consume(), name=f"wireway[{self.name}].ingest")
        self.link.start()
        # give the first attempt a moment so a reachable broker is subscribed on return;
        # an unreachable one is retried in the background and never fails the start
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(cfg.connect_timeout):
                await self.link.first_attempt.wait()

    async def stop(self) -> None:
        self.state = "stopped"
        if not hasattr(self, "link"):
            return  # never started
        self.stopping = True
        self.link.pause()
        self.wake.set()
        # let a batch that is being ingested finish and be acknowledged, briefly
        await asyncio.wait({self.consumer}, timeout=1.0)
        self.consumer.cancel()
        for call in self.calls:  # still waiting for room: the broker redelivers them
            call.cancel()
        await asyncio.gather(self.consumer, *self.calls, return_exceptions=True)
        await self.link.settle(1.0)
        await self.link.stop()

    def health(self) -> dict[str, str]:
        link = getattr(self, "link", None)
        state = {"mqtt": "up" if link is not None and link.connected else "down"}
        dropped = link.drops.health() if link is not None else None
        if dropped is not None:  # only while the broker reports lost messages
            state["mqtt_broker"] = dropped
        return state

    @property
    def unacknowledged(self) -> int:
        """Read and not yet acknowledged (waiting + being ingested)."""
        return len(self.pending) + self.ingesting

    def received(self, messages: list[Received]) -> None:
        """One read's messages: queued for the next ingest call (one per batch)."""
        if not self.pending:
            self.since = self.loop.time()
        self.pending.extend(messages)
        if self.unacknowledged >= self.config.max_inflight:
            self.link.pause()
        self.wake.set()

    def _stall(self, mark: list[bool]) -> None:
        """An ingest call is still waiting: a buffer is full, so stop reading."""
        mark.append(True)
        self.stalled += 1
        self.link.pause()

    def _reading(self) -> None:
        if not self.stopping and not self.stalled and self.unacknowledged < self.config.max_inflight:
            self.link.resume()

    async def consume(self) -> None:
        """Ingest what was read in batches, up to PIPELINE calls at once, and acknowledge
        each batch once it is stored, in the order the messages came.

        Reading goes on meanwhile (up to `max_inflight` unacknowledged messages) unless a call
        takes longer than STALL_SECONDS, which means it waits for room in a full buffer.
        """
        previous: asyncio.Task[None] | None = None
        linger = self.config.linger
        try:
            while not self.stopping:
                await self.wake.wait()
                if linger and len(self.pending) < self.batch_limit:
                    # at a low rate, a batch is what arrives within `linger` of its first
                    # message: they share one commit and one write per output (under load
                    # the wait for a free call is longer, and nothing waits here)
                    delay = self.since + linger - self.loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                self.wake.clear()
                while self.pending and not self.stopping:
                    await self.slots.acquire()
                    if not self.pending or self.stopping:
                        self.slots.release()
                        break
                    chunk = self.pending[: self.batch_limit]
                    del self.pending[: self.batch_limit]
                    self.ingesting += len(chunk)
                    previous = asyncio.create_task(self._take(chunk, previous))
                    self.calls.add(previous)
                    previous.add_done_callback(self.calls.discard)
                self._reading()
        finally:
            if previous is not None:  # stopping: let the calls under way finish briefly
                await asyncio.wait({previous}, timeout=1.0)

    async def _take(self, chunk: list[Received], previous: asyncio.Task[None] | None) -> None:
        """Ingest one batch; acknowledge it after the batch before it."""
        mark: list[bool] = []
        stall = asyncio.get_running_loop().call_later(STALL_SECONDS, self._stall, mark)
        ok = False
        try:
            try:
                while True:
                    try:
                        await self.ingest([m for _, m in chunk])
                        break
                    except BackpressureError as exc:  # the buffer file is full: hold the batch
                        if self.stopping:  # (reading stopped at STALL_SECONDS)
                            raise
                        await asyncio.sleep(exc.retry_after)
                ok = True
            except Exception as exc:  # noqa: BLE001  (the broker redelivers)
                logger.error(
                    "mqtt ingest failed; reconnecting so the broker redelivers",
                    input=self.name,
                    error=f"{type(exc).__name__}: {exc}",
                )
                self.pending.clear()
                self.link.drop()
            finally:
                stall.cancel()
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            if ok:
                self.ack(chunk)
        finally:
            if mark:
                self.stalled -= 1
            self.ingesting -= len(chunk)
            self.slots.release()
            self._reading()

    def ack(self, chunk: list[Received]) -> None:
        """PUBACK (QoS 1) / PUBREC (QoS 2), on the connection the messages came on;
        the broker redelivers the others after the reconnect."""
        generation = self.link.generation
        self.link.ack([(m[2], m[3]) for gen, m in chunk if gen == generation and m[3]])

    async def ingest(self, messages: list[Publish]) -> None:
        values: list[Any] = []
        errors: list[tuple[Any, str]] = []
        codec = self.codec
        for msg in messages:
            if type(msg[1]) is TooLarge:
                errors.append(self.too_large(msg))
                continue
            if codec is None:
                value, error = self.decode(msg)
                if error is not None:
                    errors.append(error)
                else:
                    values.append(value)
                continue
            try:
                topic = msg[0].decode()
            except UnicodeDecodeError:
                errors.append((repr(msg[0]), "invalid UTF-8 in the topic"))
                continue
            for record in codec.decode(msg[1], f"topic {topic}"):
                if record.error is not None:
                    errors.append((record.value, record.error))
                    continue
                value, error = self.finish(topic, record.value)
                if error is not None:
                    errors.append(error)
                else:
                    values.append(value)
        await self.ctx.ingest(values, source=self.name, errors=errors)

    def decode(self, msg: Publish) -> tuple[Any, tuple[Any, str] | None]:
        """The value to ingest, or (raw value, reason) for the dead-letter queue."""
        raw_topic, payload = msg[0], msg[1]
        try:
            topic = raw_topic.decode()
        except UnicodeDecodeError:
            return None, (repr(raw_topic), "invalid UTF-8 in the topic")
        if not payload:
            return None, ("", f"empty payload on topic {topic}")
        try:
            value = _decode(payload)
        except msgspec.DecodeError as exc:
            text = payload.decode("utf-8", "replace")
            return None, (text, f"invalid JSON on topic {topic}: {exc}")
        return self.finish(topic, value)

    def too_large(self, msg: Publish) -> tuple[Any, str]:
        """A PUBLISH over `max_packet_size` whose bytes were skipped: (what is kept, reason)."""
        topic = msg[0].decode("utf-8", "replace")
        size = msg[1].size if isinstance(msg[1], TooLarge) else len(msg[1])
        limit = self.config.max_packet_size
        kept = {"topic": topic, "bytes": size}
        return kept, f"a message of {size:,} bytes on topic {topic} is over max_packet_size ({limit:,})"

    def finish(self, topic: str, value: Any) -> tuple[Any, tuple[Any, str] | None]:
        """A decoded value with the topic's fields checked or added, and its id."""
        envelope = is_envelope(value)
        record = value["payload"] if envelope else value
        fields = self.config.topic_fields
        if fields and isinstance(record, dict):
            levels = topic.split("/")
            for key, index in fields.items():
                if not -len(levels) <= index < len(levels):
                    continue
                if key not in record:
                    record[key] = levels[index]
                elif _text(record[key]) != levels[index]:
                    return None, (
                        value,
                        f"topic mismatch: {key} is {json.dumps(record[key])} in the payload "
                        f"but {json.dumps(levels[index])} in the topic",
                    )
        if envelope or not self.config.id_fields:
            return value, None
        # built here, not wrapped as an envelope dict and converted again; the
        # runtime stamps the arrival time on an empty timestamp
        return Message(message_id=self.message_id(value), timestamp="", payload=value, source=self.name), None

    def message_id(self, payload: Any) -> str:
        """A UUIDv5 of the `id_fields` values, or a fresh ULID when one is missing."""
        keys = self.config.id_fields
        if not isinstance(payload, dict) or any(k not in payload for k in keys):
            return new_message_id()
        # the same ids as every other input: one instant, one text (see envelope.stable_id)
        return stable_id(*(_id_part(payload[k]) for k in keys))
