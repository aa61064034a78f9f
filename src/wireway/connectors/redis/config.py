"""Options of the `redis` input and output."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

# options that only one mode of the input reads: naming one in another mode is an error
_INPUT_ONLY = {
    "key": ("list", "streams"),
    "processing": ("list",),
    "channels": ("pubsub",),
    "patterns": ("pubsub",),
    "group": ("streams",),
    "consumer": ("streams",),
}


class RedisConnection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Options every redis connector shares (how to reach the server)."""

    url: Annotated[
        str,
        Meta(
            description="`redis://[user:password@]host:port/db`, `rediss://` for TLS or "
            "`unix:///path/to/socket`"
        ),
    ] = "redis://127.0.0.1:6379/0"

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL - at `$.url`")


class RedisInputConfig(RedisConnection, kw_only=True):
    """Read messages from Redis, in one of three `mode`s.

    - `list`: a work queue. Each item is moved atomically (BLMOVE) from `key` to a
      processing list and removed from there (LREM) only once it is stored in the
      outboxes; items a crash left in the processing list are ingested again first at
      the next start (at-least-once). Producers LPUSH; the input takes from the right
      end (`pop: right`), oldest first. Give every consumer of one list its own
      `processing` list: a consumer takes over what it finds in its own.
    - `pubsub`: SUBSCRIBE to `channels` and PSUBSCRIBE to `patterns`. Redis keeps
      nothing for a subscriber: what is published while the input is disconnected or
      restarting is lost (at-most-once).
    - `streams`: a consumer group on the stream `key` (created with MKSTREAM when
      missing, from `start_id`). An entry is acknowledged (XACK) once it is stored.
      At every start and reconnect the input first reads its own pending entries,
      then takes over (XAUTOCLAIM) entries other consumers of the group left pending
      for longer than `claim_idle` seconds; an entry delivered more than `max_deliver`
      times goes to the dead-letter queue and is acknowledged. The message body is the
      entry's `field`, or with `whole_entry` the whole field map (values as text). Its
      messageId is derived from the stream and entry id, so a redelivery keeps it (see
      the `dedupe` processor). Give each wireway instance its own `consumer` name.

    List and streams modes need Redis 6.2 or later (BLMOVE, XAUTOCLAIM).

    Values are decoded with the entry's `format:` (JSON by default); a value that is not
    valid goes to the dead-letter queue with the reason. A lost connection is retried
    with exponential backoff and jitter (/health shows the input `down` meanwhile); in
    list and streams modes nothing is lost by it.
    """

    mode: Annotated[
        Literal["list", "pubsub", "streams"],
        Meta(description="`list` (work queue), `pubsub` (channels) or `streams` (consumer group)"),
    ]
    key: Annotated[str | None, Meta(description="list or stream key (list and streams modes)")] = None
    processing: Annotated[
        str | None, Meta(description="list mode: the processing list (default `<key>:processing`)")
    ] = None
    pop: Annotated[
        Literal["right", "left"],
        Meta(description="list mode: the end items are taken from (`right` with LPUSH producers: FIFO)"),
    ] = "right"
    channels: Annotated[list[str], Meta(description="pubsub mode: channels to SUBSCRIBE to")] = []
    patterns: Annotated[
        list[str], Meta(description="pubsub mode: glob patterns to PSUBSCRIBE to, e.g. `events.*`")
    ] = []
    group: Annotated[str | None, Meta(description="streams mode: consumer group (default `wireway`)")] = None
    consumer: Annotated[
        str | None, Meta(description="streams mode: consumer name in the group (default `wireway-<pattern>`)")
    ] = None
    start_id: Annotated[
        str,
        Meta(
            description="streams mode: where a new group starts reading: `$` (entries added "
            "from now on) or `0` (the whole stream), or an entry id"
        ),
    ] = "$"
    claim_idle: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(
            description="streams mode: seconds an entry stays pending with another consumer "
            "before this one takes it over (looked for at start, on reconnect and every "
            "`claim_idle` seconds); null never takes any",
        ),
    ] = 60.0
    max_deliver: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description="streams mode: an entry delivered more times goes to the dead-letter "
            "queue (null: no limit)",
        ),
    ] = 5
    field: Annotated[str, Meta(description="streams mode: the entry field that holds the message")] = "data"
    whole_entry: Annotated[
        bool,
        Meta(description="streams mode: the payload is the entry's whole field map (not decoded)"),
    ] = False
    batch_size: Annotated[int, Meta(ge=1, le=10000, description="most items read and ingested at once")] = 500
    connect_timeout: Annotated[float, Meta(gt=0, description="seconds to connect")] = 5.0
    reconnect_min: Annotated[float, Meta(gt=0, description="seconds before the first reconnect attempt")] = (
        0.5
    )
    reconnect_max: Annotated[
        float, Meta(gt=0, description="cap of the exponential reconnect backoff (with jitter)")
    ] = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for option, modes in _INPUT_ONLY.items():
            value = getattr(self, option)
            if value not in (None, []) and self.mode not in modes:
                used = " and ".join(modes)
                raise ValueError(f"only used in {used} mode, not {self.mode} - at `$.{option}`")
        if self.mode in ("list", "streams") and not self.key:
            raise ValueError(f"required in {self.mode} mode - at `$.key`")
        if self.mode == "pubsub" and not (self.channels or self.patterns):
            raise ValueError("pubsub mode needs `channels` or `patterns` - at `$.channels`")
        for option in ("channels", "patterns"):
            for i, name in enumerate(getattr(self, option)):
                if not name:
                    raise ValueError(f"must not be empty - at `$.{option}[{i}]`")
        for option in ("processing", "group", "consumer"):
            if getattr(self, option) == "":
                raise ValueError(f"must not be empty - at `$.{option}`")
        if self.processing is not None and self.processing == self.key:
            raise ValueError("must differ from `key` - at `$.processing`")
        if not self.start_id or (self.start_id not in ("$", "0") and not _entry_id(self.start_id)):
            raise ValueError("expected `$`, `0` or an entry id like 1700000000000-0 - at `$.start_id`")
        if not self.field:
            raise ValueError("must not be empty - at `$.field`")
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("must not exceed reconnect_max - at `$.reconnect_min`")

    @property
    def processing_list(self) -> str:
        return self.processing or f"{self.key}:processing"


def _entry_id(text: str) -> bool:
    """`1700000000000-0` or `1700000000000`."""
    ms, _, seq = text.partition("-")
    return ms.isdigit() and (not seq or seq.isdigit())


class RedisOutputConfig(RedisConnection, kw_only=True):
    """Send each message to Redis, in one of three `mode`s:

    - `pubsub`: PUBLISH on a channel, a live fan-out; Redis keeps
      nothing, so only subscribers connected at that moment get it.
    - `list`: LPUSH (or RPUSH, `push: rpush`) onto a list, a work queue for a `redis`
      input in list mode or any BRPOP/BLMOVE consumer.
    - `streams`: XADD to a stream, in the entry's `field`, trimmed to
      about `maxlen` entries (MAXLEN ~).

    `channel` names the channel, list or stream and may hold placeholders like
    `sensor-events.{payload.device_id}` filled from the envelope (a message without
    that field goes to the dead-letter queue). The bytes written are the message in the
    entry's `format:` (JSON by default). A batch goes in one pipeline; a lost
    connection is retried with backoff.
    """

    channel: Annotated[
        str, Meta(description="channel, list or stream name (a template, e.g. `events.{payload.kind}`)")
    ] = "events"
    mode: Annotated[
        Literal["pubsub", "list", "streams"],
        Meta(description="`pubsub`, `list` or `streams`"),
    ] = "pubsub"
    push: Annotated[
        Literal["lpush", "rpush"], Meta(description="list mode: LPUSH (a FIFO for BRPOP consumers) or RPUSH")
    ] = "lpush"
    field: Annotated[str, Meta(description="streams mode: the entry field that holds the message")] = "data"
    payload_only: Annotated[
        bool, Meta(description="write the payload (true) or the whole envelope (false)")
    ] = True
    maxlen: Annotated[int, Meta(ge=1, description="streams mode: approximate length kept")] = 100000

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.channel:
            raise ValueError("must not be empty - at `$.channel`")
        if not self.field:
            raise ValueError("must not be empty - at `$.field`")
