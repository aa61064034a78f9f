"""The `mqtt` output: publish each message; a batch is confirmed once the broker
acknowledged every message of it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from wireway import formats
from wireway.connectors.base import Output
from wireway.connectors.mqtt.client import OK, Link, Session
from wireway.connectors.mqtt.config import MqttOutputConfig, template_parts
from wireway.envelope import Message
from wireway.errors import RetryableError
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


class Publisher(Link):
    """The output's connection: resolves the futures of acknowledged publishes."""

    def __init__(self, owner: MqttOutput, config: MqttOutputConfig, session: Session) -> None:
        super().__init__(config, session, owner.pattern.base_dir, owner.name, "output")
        self.waiting: dict[int, asyncio.Future[ReasonCode]] = {}
        self.opened = False

    async def ready(self, client: paho.Client, session_present: bool) -> None:
        connection_opened("mqtt")
        self.opened = True

    def published(self, mid: int, reason: ReasonCode) -> None:
        fut = self.waiting.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(reason)

    def lost(self, reason: str) -> None:
        if self.opened:
            self.opened = False
            connection_closed("mqtt")
        waiting, self.waiting = self.waiting, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(RetryableError(f"disconnected before the broker acknowledged: {reason}"))


@register_output("mqtt", config=MqttOutputConfig)
class MqttOutput(Output):
    """Publish to an MQTT broker; the broker's acknowledgement confirms."""

    config: MqttOutputConfig

    async def open(self) -> None:
        cfg = self.config
        self.topic = Topic(cfg.topic)
        session = Session(
            client_id=cfg.client_id or f"wireway-{self.pattern.name}-out",
            clean=True,
            max_inflight=cfg.max_inflight,
        )
        self.link = Publisher(self, cfg, session)
        self.link.start()
        with contextlib.suppress(TimeoutError):  # a broker that is down never fails the start
            await asyncio.wait_for(self.link.first_attempt.wait(), cfg.connect_timeout)

    async def close(self) -> None:
        if hasattr(self, "link"):
            await self.link.stop()

    def health(self) -> dict[str, str]:
        link = getattr(self, "link", None)
        return {"mqtt_out": "up" if link is not None and link.connected else "down"}

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        link = self.link
        client = link.client
        if client is None or not link.connected:
            raise RetryableError("not connected")
        cfg = self.config
        refused: dict[int, str] = {}
        futures: dict[asyncio.Future[ReasonCode], int] = {}
        loop = asyncio.get_running_loop()
        try:
            for i, msg in enumerate(batch):
                topic, why = self.topic.render(msg)
                if why is not None:
                    refused[i] = why
                    continue
                body = formats.encode_one(msg, cfg.payload_only)
                info = client.publish(topic, body, cfg.qos, cfg.retain)
                if info.rc != OK:
                    raise RetryableError(f"publish failed: {paho.error_string(info.rc)}")
                fut: asyncio.Future[ReasonCode] = loop.create_future()
                link.waiting[info.mid] = fut
                futures[fut] = i
            if futures:
                await self._confirmed(futures, refused)
        finally:
            for fut in futures:
                fut.cancel()  # no-op when done
            if link.waiting:
                mids = [m for m, f in link.waiting.items() if f in futures]
                for mid in mids:
                    del link.waiting[mid]
        return refused or None

    async def _confirmed(
        self, futures: dict[asyncio.Future[ReasonCode], int], refused: dict[int, str]
    ) -> None:
        timeout = self.config.ack_timeout
        done, pending = await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
        errors = [f.exception() for f in done if f.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]
        if pending:
            raise RetryableError(
                f"the broker acknowledged {len(done)} of {len(futures)} messages in {timeout}s"
            )
        for fut in done:
            reason = fut.result()
            if reason.is_failure:  # MQTT 5: e.g. not authorized, quota exceeded
                refused[futures[fut]] = f"refused by the broker: {reason}"
