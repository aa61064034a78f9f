"""The `amqp` output: publish persistent messages, delivered once RabbitMQ confirms."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import aiormq
import msgspec
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aiormq.channel import Channel

from wireway.connectors.amqp.config import AmqpOutputConfig
from wireway.connectors.amqp.link import AMQP_ERRORS, closed_event, connect, declare, describe
from wireway.connectors.base import Output
from wireway.connectors.templates import fill
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.observability import logging as log
from wireway.registry import register_output

logger = log.get("amqp")


@register_output("amqp", config=AmqpOutputConfig)
class AmqpOutput(Output):
    """Publish to an exchange with publisher confirms."""

    config: AmqpOutputConfig
    formats = None
    connection: AbstractConnection | None = None
    channel: AbstractChannel | None = None
    exchange: AbstractExchange | None = None
    underlay: Channel | None = None
    closed: asyncio.Event | None = None

    async def open(self) -> None:
        self.codec = self.iface.new_codec()
        self.templated = "{" in self.config.routing_key
        self.mode = 2 if self.config.persistent else 1  # AMQP delivery mode
        self.lock = asyncio.Lock()
        # connect now when the broker is there; else the first write connects (and its
        # retries with backoff are the reconnects)
        with contextlib.suppress(RetryableError):
            await self.ensure()

    async def close(self) -> None:
        await self.drop()

    def health(self) -> dict[str, str]:
        return {"amqp_out": "up" if self.connected else "down"}

    @property
    def connected(self) -> bool:
        return self.exchange is not None and self.closed is not None and not self.closed.is_set()

    async def ensure(self) -> AbstractExchange:
        """The exchange to publish to, on an open channel (connecting first if needed)."""
        async with self.lock:
            if self.connected:
                assert self.exchange is not None
                return self.exchange
            await self.drop()
            cfg = self.config
            try:
                self.connection = await connect(cfg, self.name)
                channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
                self.channel = channel
                await declare(cfg, channel, cfg.queue, cfg.bind_key or cfg.routing_key)
                if not cfg.exchange:
                    exchange = channel.default_exchange
                else:
                    exchange = await channel.get_exchange(cfg.exchange, ensure=not cfg.declare_exchange)
                self.underlay = cast(Channel, await channel.get_underlay_channel())
                self.closed = closed_event(self.connection, channel)
            except AMQP_ERRORS as exc:
                await self.drop()
                logger.warning("amqp output cannot connect", output=self.name, error=describe(exc))
                raise RetryableError(f"amqp: {describe(exc)}") from exc
            self.exchange = exchange
            return exchange

    async def drop(self) -> None:
        connection, self.connection = self.connection, None
        self.exchange = self.channel = None
        self.underlay = None
        if connection is not None:
            with contextlib.suppress(*AMQP_ERRORS):
                await asyncio.wait_for(connection.close(), 2.0)

    def build(self, msg: Message) -> tuple[bytes, aiormq.spec.Basic.Properties, str]:
        key = self.config.routing_key
        if self.templated:
            key = fill(key, msgspec.to_builtins(msg))
        body = self.codec.encode(msg, self.config.payload_only)
        properties = aiormq.spec.Basic.Properties(
            content_type=self.codec.content_type,
            delivery_mode=self.mode,
            message_id=msg.message_id,
            message_type=msg.message_type,
        )
        return body, properties, key

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        await self.ensure()
        assert self.underlay is not None
        refused: dict[int, str] = {}
        sends: list[Any] = []
        for i, msg in enumerate(batch):
            try:
                body, properties, key = self.build(msg)
            except (KeyError, TypeError) as exc:
                refused[i] = f"routing_key template: missing field {exc}"
                continue
            except ValueError as exc:  # the format cannot carry this message
                refused[i] = str(exc)
                continue
            # written without waiting for the socket per message (aio-pika's `publish`
            # waits for each), then every confirm is awaited
            publish = self.underlay.basic_publish(
                body,
                exchange=self.config.exchange,
                routing_key=key,
                properties=properties,
                mandatory=self.config.mandatory,
                wait=False,
            )
            sends.append(publish)
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*sends, return_exceptions=True), self.config.confirm_timeout
            )
        except TimeoutError as exc:
            await self.drop()  # late confirms of this channel must not count for the retry
            raise RetryableError(f"amqp: no confirm within {self.config.confirm_timeout:g}s") from exc
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            if not isinstance(first, aiormq.exceptions.DeliveryError):
                await self.drop()  # the channel or the connection is gone
            raise RetryableError(f"amqp: {len(failures)} of {len(sends)} not confirmed: {describe(first)}")
        return refused or None
