"""Options of the `redis` output."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class RedisOutputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Publish each message to Redis: PUBLISH on a pub/sub channel (live fan-out, no
    delivery guarantee once Redis has it) or XADD to a stream (kept, up to `maxlen`).

    `channel` may hold placeholders like `sensor-events.{payload.device_id}` filled from
    the envelope. A batch goes in one pipeline; connection errors are retried.
    """

    url: Annotated[str, Meta(description="redis://host:port/db")] = "redis://127.0.0.1:6379/0"
    channel: Annotated[str, Meta(description="channel or stream name (a template)")] = "events"
    mode: Literal["publish", "stream"] = "publish"
    payload_only: bool = True
    maxlen: Annotated[int, Meta(ge=1, description="stream mode: approximate length kept")] = 100000

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis:// URL - at `$.url`")
