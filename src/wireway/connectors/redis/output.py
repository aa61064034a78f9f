"""The `redis` output: PUBLISH on a channel, LPUSH/RPUSH onto a list or XADD to a stream."""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis
import redis.exceptions

from wireway.connectors.base import Output
from wireway.connectors.redis.config import RedisOutputConfig
from wireway.connectors.templates import fill
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.registry import register_output


@register_output("redis", config=RedisOutputConfig)
class RedisOutput(Output):
    """Send each message to a Redis channel, list or stream."""

    config: RedisOutputConfig
    client: aioredis.Redis
    up = False
    formats = None

    async def open(self) -> None:
        self.client = aioredis.from_url(self.config.url)
        self.templated = "{" in self.config.channel
        self.codec = self.iface.new_codec()

    async def close(self) -> None:
        await self.client.aclose()

    def health(self) -> dict[str, str]:
        return {"redis": "up" if self.up else "down"}

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        cfg = self.config
        refused: dict[int, str] = {}
        pipe = self.client.pipeline(transaction=False)
        for i, msg in enumerate(batch):
            try:
                channel = fill(cfg.channel, msgspec.to_builtins(msg)) if self.templated else cfg.channel
            except (KeyError, TypeError) as exc:
                refused[i] = f"channel template: missing field {exc}"
                continue
            data = self.codec.encode(msg, cfg.payload_only)
            if cfg.mode == "pubsub":
                pipe.publish(channel, data)
            elif cfg.mode == "list":
                if cfg.push == "lpush":
                    pipe.lpush(channel, data)
                else:
                    pipe.rpush(channel, data)
            else:
                pipe.xadd(channel, {cfg.field: data}, maxlen=cfg.maxlen, approximate=True)
        try:
            await pipe.execute()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            self.up = False
            raise RetryableError(f"redis: {exc}") from exc
        self.up = True
        return refused or None
