"""The `redis` input: a list work queue, pub/sub channels or a stream consumer group.

One task per input connects, lets the mode's reader set up (subscribe, create the
group, finish the acknowledgements a lost connection interrupted, take up what a
crash left), then reads a batch, ingests it and acknowledges it once it is stored,
one batch after the other. Any failure closes the connection and starts over after
a backoff: what was read and not acknowledged is still in Redis (list and streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from wireway.connectors.base import Input, InputContext
from wireway.connectors.redis.config import RedisInputConfig
from wireway.connectors.redis.readers import BLOCK, Batch, ListReader, PubSubReader, Reader
from wireway.connectors.redis.streams import StreamReader
from wireway.envelope import Message, is_envelope, stable_id
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("redis")

STOP_GRACE = 1.0  # seconds a batch being stored may take to finish when stopping
LOST = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def new_client(cfg: RedisInputConfig, name: str) -> aioredis.Redis:
    """A client that never retries by itself: the input must see every lost connection
    to take up what a lost reply left in the processing list or the pending entries.
    Named `wireway:<input>` in CLIENT LIST."""
    return aioredis.from_url(
        cfg.url,
        client_name="wireway:" + re.sub(r"[^\w.:-]", "_", name),  # no spaces in a client name
        socket_connect_timeout=cfg.connect_timeout,
        socket_timeout=BLOCK + cfg.connect_timeout,
        retry=Retry(NoBackoff(), 0),
    )


@register_input("redis", config=RedisInputConfig)
class RedisInput(Input):
    """Read a Redis list, channels or a stream; acknowledge once stored."""

    config: RedisInputConfig
    formats = None

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.codec = self.iface.new_codec()
        self.stopping = False
        self.storing = False  # a batch is being ingested and acknowledged
        self.connected = False
        self.first_attempt = asyncio.Event()
        readers = {"list": ListReader, "pubsub": PubSubReader, "streams": StreamReader}
        self.reader: Reader = readers[self.config.mode](self)
        self.state = "connecting"
        self.task = asyncio.create_task(self.run(), name=f"wireway[{self.name}].redis")
        # a reachable server is subscribed on return; an unreachable one is retried in
        # the background and never fails the start
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.connect_timeout + 1):
                await self.first_attempt.wait()

    async def stop(self) -> None:
        self.state = "stopped"
        if not hasattr(self, "task"):
            return  # never started
        self.stopping = True
        if self.storing:  # let the batch be stored and acknowledged, briefly; anything
            # else (a blocking read, a backoff) stops at once: Redis keeps what was read
            await asyncio.wait({self.task}, timeout=STOP_GRACE)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def health(self) -> dict[str, str]:
        return {self.name: "up" if getattr(self, "connected", False) else "down"}

    async def run(self) -> None:
        """Connect, read, ingest and acknowledge until stopped; reconnect with backoff."""
        attempt = 0
        while not self.stopping:
            client = new_client(self.config, self.name)
            try:
                await client.ping()
                await self.reader.open(client)
                self._up()
                attempt = 0
                await self.loop()
            except asyncio.CancelledError:
                raise
            except LOST as exc:
                logger.warning("redis connection lost", input=self.name, error=f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001  (whatever it was: start over, Redis keeps the rest)
                logger.error("redis input failed", input=self.name, error=f"{type(exc).__name__}: {exc}")
            finally:
                self.storing = False
                self._down()
                with contextlib.suppress(Exception):
                    await self.reader.close()
                with contextlib.suppress(Exception):
                    await client.aclose()
            self.first_attempt.set()
            attempt += 1
            if not self.stopping:
                cap = min(self.config.reconnect_max, self.config.reconnect_min * 2 ** (attempt - 1))
                await asyncio.sleep(random.uniform(cap / 2, cap))

    async def loop(self) -> None:
        while not self.stopping:
            batch = await self.reader.read()
            if batch is None:
                continue
            self.storing = True
            await self.ctx.ingest(batch.values, source=self.name, errors=batch.errors)
            await self.reader.ack(batch)
            self.storing = False

    def _up(self) -> None:
        self.connected = True
        self.state = "running"
        self.ctx.connection_opened("redis")
        self.first_attempt.set()

    def _down(self) -> None:
        if self.connected:
            self.connected = False
            self.ctx.connection_closed("redis")
        if not self.stopping:
            self.state = "connecting"

    def decode(self, data: bytes, where: str, batch: Batch, ident: tuple[str, ...] | None = None) -> None:
        """Add the records of one unit to the batch: values, or (raw, reason) for the DLQ.

        `ident` names the unit for good (a stream entry): its messages get ids derived
        from it, so a redelivery carries the same messageId."""
        for n, record in enumerate(self.codec.decode(data, where)):
            if record.error is not None:
                batch.errors.append((data.decode("utf-8", "replace"), record.error))
            else:
                self.decode_value(record.value, ident, batch, n)

    def decode_value(self, value: Any, ident: tuple[str, ...] | None, batch: Batch, n: int = 0) -> None:
        """Add one decoded value (an envelope is taken as it is)."""
        if ident is None or is_envelope(value):
            batch.values.append(value)
        else:
            message_id = stable_id("redis", *ident, n)
            batch.values.append(Message(message_id=message_id, timestamp="", payload=value, source=self.name))
