"""How each mode of the `redis` input reads a batch and acknowledges it: the list
work queue and pub/sub here, the stream consumer group in streams.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from wireway.config.model import Pattern
from wireway.connectors.redis.config import RedisInputConfig

BLOCK = 1.0  # seconds a blocking read waits before the loop looks around again

# Moves up to ARGV[1] items from KEYS[1] to the head of KEYS[2] in one round trip,
# the oldest first; atomic, so an item is always in one list or the other.
MOVE_MANY = """
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local item = redis.call('LMOVE', KEYS[1], KEYS[2], ARGV[2], 'LEFT')
  if not item then break end
  out[i] = item
end
return out
"""


@dataclass
class Batch:
    """What one read gave: values to ingest, undecodable ones for the DLQ, and what
    to acknowledge once they are stored."""

    values: list[Any] = field(default_factory=list)
    errors: list[tuple[Any, str]] = field(default_factory=list)
    acks: list[Any] = field(default_factory=list)


class Owner(Protocol):
    """What a reader uses of its input: its options and its decoding."""

    config: RedisInputConfig
    pattern: Pattern

    def decode(self, data: bytes, where: str, batch: Batch, ident: tuple[str, ...] | None = None) -> None: ...

    def decode_value(self, value: Any, ident: tuple[str, ...] | None, batch: Batch, n: int = 0) -> None: ...


class Reader:
    """One mode: `open` on each connection, then `read` and `ack` in turn."""

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.config = owner.config
        self.client: Any = None
        self.unacked: list[Any] = []  # stored, but the acknowledgement did not get through

    async def open(self, client: Any) -> None:
        self.client = client

    async def read(self) -> Batch | None:
        """One batch, or None when nothing came within BLOCK seconds."""
        raise NotImplementedError

    async def ack(self, batch: Batch) -> None:
        return None

    async def close(self) -> None:
        return None


class ListReader(Reader):
    """BLMOVE from the list into the processing list; LREM once stored. The processing
    list is read first at each (re)connect: what is there was taken and not stored."""

    async def open(self, client: Any) -> None:
        await super().open(client)
        self.key = self.config.key
        self.processing = self.config.processing_list
        self.end = self.config.pop.upper()
        self.move = client.register_script(MOVE_MANY)
        if self.unacked:
            # stored before the connection went: remove them before reading the
            # processing list again, so they are not ingested twice
            await self._remove(self.unacked)
            self.unacked = []
        self.recovering = True

    async def read(self) -> Batch | None:
        size = self.config.batch_size
        if self.recovering:
            # the processing list's oldest items are at its tail
            items = await self.client.lrange(self.processing, -size, -1)
            if items:
                return self._batch(list(reversed(items)))
            self.recovering = False
        items = await self.move(keys=[self.key, self.processing], args=[size, self.end])
        if not items:
            item = await self.client.blmove(self.key, self.processing, BLOCK, self.end, "LEFT")
            if item is None:
                return None
            items = [item]
        return self._batch(items)

    def _batch(self, items: list[bytes]) -> Batch:
        batch = Batch(acks=items)
        for item in items:
            self.owner.decode(item, f"list {self.key}", batch)
        return batch

    async def ack(self, batch: Batch) -> None:
        try:
            await self._remove(batch.acks)
        except BaseException:
            self.unacked = batch.acks
            raise

    async def _remove(self, items: list[bytes]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for item in items:
            pipe.lrem(self.processing, -1, item)  # from the tail, where the oldest are
        await pipe.execute()


class PubSubReader(Reader):
    """SUBSCRIBE and PSUBSCRIBE; nothing to acknowledge (Redis keeps nothing)."""

    async def open(self, client: Any) -> None:
        await super().open(client)
        self.pubsub = client.pubsub()
        self.early: list[dict[str, Any]] = []
        cfg = self.config
        if cfg.channels:
            await self.pubsub.subscribe(*cfg.channels)
        if cfg.patterns:
            await self.pubsub.psubscribe(*cfg.patterns)
        # running once Redis confirmed every subscription: a message published after
        # start() returned is received
        waiting = len(cfg.channels) + len(cfg.patterns)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.connect_timeout
        while waiting:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("Redis did not confirm the subscriptions")
            message = await self.pubsub.get_message(timeout=left)
            if message is None:
                continue
            if message["type"] in ("subscribe", "psubscribe"):
                waiting -= 1
            elif message["type"] in ("message", "pmessage"):
                self.early.append(message)

    async def read(self) -> Batch | None:
        messages, self.early = self.early, []
        if not messages:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=BLOCK)
            if message is None:
                return None
            messages.append(message)
        while len(messages) < self.config.batch_size:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
            if message is None:
                break
            messages.append(message)
        batch = Batch()
        for message in messages:
            if message["type"] not in ("message", "pmessage"):
                continue
            channel = message["channel"].decode("utf-8", "replace")
            self.owner.decode(message["data"], f"channel {channel}", batch)
        return batch

    async def close(self) -> None:
        pubsub = getattr(self, "pubsub", None)
        if pubsub is not None:
            self.pubsub = None
            await pubsub.aclose()
