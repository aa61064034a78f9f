"""The `mqtt` output: publish each message; a batch is confirmed once the broker
acknowledged every message of it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from wireway import formats
from wireway.connectors.base import Output
from wireway.connectors.mqtt import wire
from wireway.connectors.mqtt.config import MqttOutputConfig, template_parts
from wireway.connectors.mqtt.outbound import Batch, Publisher
from wireway.connectors.mqtt.session import Session
from wireway.envelope import Message
from wireway.errors import NotConnected, RetryableError
from wireway.observability.metrics import connection_closed, connection_opened
from wireway.registry import register_output

_MISSING = object()


class Topic:
    """A topic template: `sensors/{payload.device_id}` -> `sensors/d-17`."""

    def __init__(self, template: str) -> None:
        self.parts = [(text, path.split(".") if path else []) for text, path in template_parts(template)]
        self.static = all(not path for _, path in self.parts)

    def render(self, msg: Message) -> tuple[str, str | None]:
        """(topic, None), or ("", why the message has no topic)."""
        if self.static:
            return self.parts[0][0], None
        out: list[str] = []
        context: dict[str, Any] | None = None
        for text, path in self.parts:
            out.append(text)
            if not path:
                continue
            if path[0] == "payload":
                value: Any = msg.payload
            else:
                context = context if context is not None else msg.to_context()
                value = context.get(path[0], _MISSING)
            for key in path[1:]:
                value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
            name = ".".join(path)
            if value is _MISSING or value is None:
                return "", f"topic template: {name} is missing"
            if isinstance(value, dict | list):
                return "", f"topic template: {name} is not a scalar"
            text_value = str(value).lower() if isinstance(value, bool) else str(value)
            if "+" in text_value or "#" in text_value or "\0" in text_value:
                return "", f"topic template: {name} contains + # or NUL"
            out.append(text_value)
        return "".join(out), None


class OutputLink(Publisher):
    """The output's connection: counted as an open mqtt connection while it is up."""

    def __init__(self, owner: MqttOutput, config: MqttOutputConfig, session: Session) -> None:
        super().__init__(config, session, owner.pattern.base_dir, owner.name, "output", config.max_inflight)
        self.counted = False

    async def opened(self, session_present: bool, properties: dict[int, int]) -> None:
        await super().opened(session_present, properties)
        connection_opened("mqtt")
        self.counted = True

    def lost(self, reason: str) -> None:
        if self.counted:
            self.counted = False
            connection_closed("mqtt")
        super().lost(reason)


@register_output("mqtt", config=MqttOutputConfig)
class MqttOutput(Output):
    """Publish to an MQTT broker; the broker's acknowledgement confirms."""

    config: MqttOutputConfig
    formats = None  # any: one encoded message per PUBLISH

    async def open(self) -> None:
        cfg = self.config
        self.topic = Topic(cfg.topic)
        # json through the envelope's own encoder; any other format through its codec
        self.codec = None if self.iface.format in ("json", "jsonl") else self.iface.new_codec()
        session = Session(client_id=cfg.client_id or f"wireway-{self.pattern.name}-out", clean=True)
        self.link = OutputLink(self, cfg, session)
        self.link.start()
        with contextlib.suppress(TimeoutError):  # a broker that is down never fails the start
            async with asyncio.timeout(cfg.connect_timeout):
                await self.link.first_attempt.wait()

    async def close(self) -> None:
        if hasattr(self, "link"):
            await self.link.stop()

    def health(self) -> dict[str, str]:
        link = getattr(self, "link", None)
        return {"mqtt_out": "up" if link is not None and link.connected else "down"}

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        link = self.link
        if not link.connected:
            raise NotConnected("not connected to the MQTT broker")
        cfg = self.config
        refused: dict[int, str] = {}
        sent = Batch()
        try:
            for i, msg in enumerate(batch):
                topic, why = self.topic.render(msg)
                if why is not None:
                    refused[i] = why
                    continue
                if self.codec is None:
                    data = formats.encode_one(msg, cfg.payload_only)
                else:
                    try:
                        data = self.codec.encode(msg, cfg.payload_only)
                    except ValueError as exc:
                        refused[i] = str(exc)
                        continue
                if cfg.qos and not link.has_room():
                    await link.wait_room()
                link.publish(topic.encode(), data, cfg.qos, cfg.retain, sent, i)
            sent.seal()
            await asyncio.wait_for(asyncio.shield(sent.done), cfg.ack_timeout)
        except ConnectionError as exc:
            raise RetryableError(str(exc)) from exc
        except TimeoutError:
            raise RetryableError(
                f"the broker acknowledged {sent.acknowledged + len(sent.refused)} of "
                f"{sent.acknowledged + len(sent.refused) + sent.waiting} messages in {cfg.ack_timeout}s"
            ) from None
        finally:
            if not sent.done.done():
                link.forget(sent)
                sent.done.cancel()
            elif not sent.done.cancelled():
                sent.done.exception()  # retrieved: a failure was raised above
        for i, code in sent.refused.items():  # MQTT 5: e.g. not authorized, quota exceeded
            refused[i] = f"refused by the broker: {wire.reason_text(code, True)}"
        return refused or None
