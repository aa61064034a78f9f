"""What the amqp input and output share: connecting with backoff, declaring."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

from wireway.connectors.amqp.config import AmqpConnection

# what a lost or refused connection raises at aio-pika's edge
AMQP_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aio_pika.exceptions.AMQPException,
    ConnectionError,
    OSError,
    TimeoutError,
    RuntimeError,  # aio-pika's "Channel closed by RPC timeout" and the like
)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Backoff:
    """Exponential delays with jitter between reconnect attempts."""

    def __init__(self, config: AmqpConnection) -> None:
        self.low = config.reconnect_min
        self.high = config.reconnect_max
        self.next = self.low

    def reset(self) -> None:
        self.next = self.low

    async def sleep(self) -> None:
        delay = self.next * random.uniform(0.5, 1.0)
        self.next = min(self.high, self.next * 2)
        await asyncio.sleep(delay)


async def connect(config: AmqpConnection, name: str) -> AbstractConnection:
    """One connection (no automatic reconnect: the connectors reconnect themselves,
    so that their state and the acknowledgements follow the connection they are on)."""
    return await asyncio.wait_for(
        aio_pika.connect(
            config.url,
            timeout=config.connect_timeout,
            heartbeat=config.heartbeat,
            client_properties={"connection_name": f"wireway {name}"},
        ),
        config.connect_timeout * 2,
    )


async def declare(
    config: AmqpConnection, channel: AbstractChannel, queue: str | None, key: str | None
) -> None:
    """The exchange and the queue the options ask wireway to declare, and the binding."""
    if config.declare_exchange:
        await channel.declare_exchange(config.exchange, config.exchange_type, durable=True)
    if queue is not None:
        declared = await channel.declare_queue(
            queue, durable=True, arguments=config.queue_arguments() or None
        )
        if config.exchange and key is not None:
            await declared.bind(config.exchange, routing_key=key)


def closed_event(connection: AbstractConnection, channel: AbstractChannel) -> asyncio.Event:
    """Set when the connection or the channel closes."""
    event = asyncio.Event()

    def closed(*_: Any) -> None:
        event.set()

    connection.close_callbacks.add(closed)
    channel.close_callbacks.add(closed)
    return event
