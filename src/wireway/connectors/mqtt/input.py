"""The `mqtt` input: subscribe, ingest each read's messages as one batch, and
acknowledge them to the broker only once they are in their outboxes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from wireway.connectors.base import Input, InputContext
from wireway.connectors.mqtt.client import OK, Link, Session
from wireway.connectors.mqtt.config import MqttInputConfig
from wireway.envelope import canonical_timestamp, is_envelope, new_message_id, stable_id
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("mqtt")
_decode = msgspec.json.Decoder().decode

STALL_SECONDS = 0.1  # an ingest call taking longer waits for room: reading stops

# Fixed forever: `id_fields` ids must stay the same across versions and restarts.

Received = tuple[int, paho.MQTTMessage]  # (connection generation, message)


def _id_part(value: Any) -> str:
    """A timestamp in its canonical form (so 18:33:58Z and 18:33:58.000+00:00 agree)."""
    if isinstance(value, str):
        try:
            return canonical_timestamp(value)
        except ValueError:
            return value
    return str(value)


def _text(value: Any) -> str:
    """How a payload value compares with a topic level."""
    return value if isinstance(value, str) else json.dumps(value)


class Subscriber(Link):
    """The input's connection: subscribes after each CONNACK, hands reads to the input."""

    def __init__(self, owner: MqttInput, config: MqttInputConfig, session: Session) -> None:
        super().__init__(config, session, owner.pattern.base_dir, owner.name, "input")
        self.owner = owner
        self.topics = [
            f"$share/{config.shared_group}/{t}" if config.shared_group else t for t in config.topics
        ]
        self.opened = False
        self._suback: asyncio.Future[list[ReasonCode]] | None = None
        self._sub_mid = -1

    async def ready(self, client: paho.Client, session_present: bool) -> None:
        self.owner.ctx.connection_opened("mqtt")
        self.opened = True
        qos = self.owner.config.qos
        if self.config.mqtt5:
            # retained messages only for a new subscription, not on every reconnect
            new_only = SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
            opts = SubscribeOptions(qos=qos, retainHandling=new_only)
            topics: list[tuple[str, Any]] = [(t, opts) for t in self.topics]
        else:
            topics = [(t, qos) for t in self.topics]
        self._suback = asyncio.get_running_loop().create_future()
        rc, mid = client.subscribe(topics)
        if rc != OK or mid is None:
            raise ConnectionError(f"subscribe failed: {paho.error_string(rc)}")
        self._sub_mid = mid
        reasons = await self._suback
        refused = [t for t, r in zip(self.topics, reasons, strict=False) if r.is_failure]
        if refused:
            logger.error("mqtt subscription refused", input=self.label, topics=refused)
        self.owner.state = "running"

    def subscribed(self, mid: int, reasons: list[ReasonCode]) -> None:
        if mid == self._sub_mid and self._suback is not None and not self._suback.done():
            self._suback.set_result(reasons)

    def received(self, messages: list[paho.MQTTMessage]) -> None:
        self.owner.received([(self.generation, m) for m in messages])

    def read_budget(self) -> int:
        return self.owner.read_budget()

    def lost(self, reason: str) -> None:
        if self._suback is not None and not self._suback.done():
            self._suback.set_exception(ConnectionError(f"connection closed: {reason}"))
            self._suback.exception()  # retrieved: `ready` may no longer be waiting
        if self.opened:
            self.opened = False
            self.owner.ctx.connection_closed("mqtt")
        if self.owner.state != "stopped":
            self.owner.state = "connecting"


@register_input("mqtt", config=MqttInputConfig)
class MqttInput(Input):
    """Subscribe to MQTT topics; PUBACK once a message is in its outboxes."""

    config: MqttInputConfig

    async def start(self, ctx: InputContext) -> None:
        cfg = self.config
        self.ctx = ctx
        self.pending: list[Received] = []
        self.held = 0  # read and not yet acknowledged (pending + being ingested)
        self.stalled = False  # an ingest call is waiting for room in a full buffer
        self.wake = asyncio.Event()
        self.stopping = False
        self.batch_limit = min(cfg.max_inflight, self.pattern.settings.buffer_size)
        session = Session(
            client_id=cfg.client_id or f"wireway-{self.pattern.name}",
            clean=cfg.clean_session,
            session_expiry=cfg.session_expiry,
            receive_maximum=cfg.max_inflight,
            manual_ack=True,
        )
        self.link = Subscriber(self, cfg, session)
        self.state = "connecting"
        self.consumer = asyncio.create_task(self.consume(), name=f"wireway[{self.name}].ingest")
        self.link.start()
        # give the first attempt a moment so a reachable broker is subscribed on return;
        # an unreachable one is retried in the background and never fails the start
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.link.first_attempt.wait(), cfg.connect_timeout)

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
        await asyncio.gather(self.consumer, return_exceptions=True)
        await self.link.stop()

    def health(self) -> dict[str, str]:
        link = getattr(self, "link", None)
        return {"mqtt": "up" if link is not None and link.connected else "down"}

    def read_budget(self) -> int:
        """How many more messages may be read before `max_inflight` are held."""
        return max(1, self.config.max_inflight - self.held)

    def received(self, messages: list[Received]) -> None:
        """One read's messages: queued for the next ingest call (one per batch)."""
        self.pending.extend(messages)
        self.held += len(messages)
        if self.held >= self.config.max_inflight:
            self.link.pause()
        self.wake.set()

    def _stall(self) -> None:
        """The ingest call is still waiting: a buffer is full, so stop reading."""
        self.stalled = True
        self.link.pause()

    def _reading(self) -> None:
        if not self.stopping and not self.stalled and self.held < self.config.max_inflight:
            self.link.resume()

    async def consume(self) -> None:
        """Ingest what was read, one batch per call, and acknowledge it afterwards.

        Reading goes on meanwhile (up to `max_inflight` held messages) unless the call
        takes longer than STALL_SECONDS, which means it waits for room in a full buffer.
        """
        loop = asyncio.get_running_loop()
        while not self.stopping:
            await self.wake.wait()
            self.wake.clear()
            while self.pending and not self.stopping:
                chunk = self.pending[: self.batch_limit]
                del self.pending[: self.batch_limit]
                stall = loop.call_later(STALL_SECONDS, self._stall)
                try:
                    await self.ingest([m for _, m in chunk])
                except Exception as exc:  # noqa: BLE001  (the broker redelivers)
                    logger.error(
                        "mqtt ingest failed; reconnecting so the broker redelivers",
                        input=self.name,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    self.pending.clear()
                    self.held = 0
                    self.link.drop()
                    break
                finally:
                    stall.cancel()
                    self.stalled = False
                self.ack(chunk)
                self.held -= len(chunk)
                self._reading()
            self._reading()

    def ack(self, chunk: list[Received]) -> None:
        """PUBACK (QoS 1) / PUBCOMP (QoS 2), on the connection the messages came on."""
        client = self.link.client
        if client is None or not self.link.connected:
            return  # the broker redelivers them after the reconnect
        generation = self.link.generation
        for gen, msg in chunk:
            if msg.qos and gen == generation:
                client.ack(msg.mid, msg.qos)

    async def ingest(self, messages: list[paho.MQTTMessage]) -> None:
        values: list[Any] = []
        errors: list[tuple[Any, str]] = []
        for msg in messages:
            value, error = self.decode(msg)
            if error is not None:
                errors.append(error)
            else:
                values.append(value)
        await self.ctx.ingest(values, source=self.name, errors=errors)

    def decode(self, msg: paho.MQTTMessage) -> tuple[Any, tuple[Any, str] | None]:
        """The value to ingest, or (raw value, reason) for the dead-letter queue."""
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            return None, (repr(msg._topic), "invalid UTF-8 in the topic")
        try:
            value = _decode(msg.payload)
        except msgspec.DecodeError as exc:
            text = msg.payload.decode("utf-8", "replace")
            return None, (text, f"invalid JSON on topic {topic}: {exc}")
        envelope = is_envelope(value)
        body = value["payload"] if envelope else value
        fields = self.config.topic_fields
        if fields and isinstance(body, dict):
            levels = topic.split("/")
            for key, index in fields.items():
                if index >= len(levels):
                    continue
                if key not in body:
                    body[key] = levels[index]
                elif _text(body[key]) != levels[index]:
                    return None, (
                        value,
                        f"topic mismatch: {key} is {json.dumps(body[key])} in the payload "
                        f"but {json.dumps(levels[index])} in the topic",
                    )
        if envelope or not self.config.id_fields:
            return value, None
        return {
            "messageId": self.message_id(value),
            "messageType": "data",
            "payload": value,
            "source": self.name,
        }, None

    def message_id(self, payload: Any) -> str:
        """A UUIDv5 of the `id_fields` values, or a fresh ULID when one is missing."""
        keys = self.config.id_fields
        if not isinstance(payload, dict) or any(k not in payload for k in keys):
            return new_message_id()
        # the same ids as every other input: one instant, one text (see envelope.stable_id)
        return stable_id(*(_id_part(payload[k]) for k in keys))
