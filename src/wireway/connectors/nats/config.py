"""Options of the `nats` input and output (core NATS and JetStream)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from wireway.connectors.templates import FIELD, check_template

_NAME = re.compile(r"[A-Za-z0-9_-]+")


def check_subject(subject: str, wildcards: bool) -> None:
    if not subject or subject.startswith(".") or subject.endswith(".") or ".." in subject:
        raise ValueError("a subject is dot-separated tokens, like `sensors.readings`")
    if any(c.isspace() for c in subject):
        raise ValueError("a subject cannot contain white space")
    tokens = subject.split(".")
    if not wildcards and ("*" in tokens or ">" in tokens):
        raise ValueError("a subject to publish to cannot contain the wildcards * or >")
    if ">" in tokens[:-1]:
        raise ValueError("`>` must be the last token")


class NatsConnection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Options every nats connector shares (how to reach the server)."""

    url: Annotated[
        str,
        Meta(
            description="`nats://host:port` (`tls://` for TLS); several servers of a cluster "
            "separated by commas; `nats://user:password@host` and `nats://token@host` are accepted"
        ),
    ] = "nats://127.0.0.1:4222"
    connect_timeout: Annotated[float, Meta(gt=0, description="seconds to connect")] = 5.0
    reconnect_wait: Annotated[
        float, Meta(gt=0, description="seconds between reconnect attempts (nats-py adds jitter)")
    ] = 1.0
    jetstream: Annotated[
        bool, Meta(description="use JetStream (kept, acknowledged) instead of core NATS (at-most-once)")
    ] = False
    stream: Annotated[str | None, Meta(description="JetStream: the stream (required with `create`)")] = None
    create: Annotated[
        bool,
        Meta(
            description="JetStream: create the stream (file storage, on `stream_subjects`) and, for "
            "the input, its durable consumer, when missing"
        ),
    ] = False
    stream_subjects: Annotated[
        list[str] | None,
        Meta(description="JetStream, `create`: the stream's subjects (default: `subject`)"),
    ] = None
    duplicate_window: Annotated[
        float,
        Meta(gt=0, description="JetStream with `create`: seconds the stream remembers message ids"),
    ] = 120.0

    def __post_init__(self) -> None:
        for server in self.url.split(","):
            parts = urlsplit(server.strip())
            if parts.scheme not in ("nats", "tls"):
                raise ValueError("expected a nats:// or tls:// URL - at `$.url`")
            try:
                parts.port  # noqa: B018  (raises ValueError for a bad port)
            except ValueError:
                raise ValueError("invalid port in the URL - at `$.url`") from None
            if not parts.hostname:
                raise ValueError("the URL has no host - at `$.url`")
        if self.stream is not None and not _NAME.fullmatch(self.stream):
            raise ValueError("letters, digits, - and _ only - at `$.stream`")
        if not self.jetstream:
            for key in ("stream", "stream_subjects"):
                if getattr(self, key) is not None:
                    raise ValueError(f"only applies with `jetstream: true` - at `$.{key}`")
            if self.create:
                raise ValueError("only applies with `jetstream: true` - at `$.create`")
        if self.create and self.stream is None:
            raise ValueError("creating a stream needs its name (`stream`) - at `$.create`")
        for i, subject in enumerate(self.stream_subjects or []):
            try:
                check_subject(subject, wildcards=True)
            except ValueError as exc:
                raise ValueError(f"{exc} - at `$.stream_subjects[{i}]`") from None

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.url.split(",")]


class NatsInputConfig(NatsConnection, kw_only=True):
    """Subscribe to a NATS subject: core NATS, or a JetStream durable pull consumer.

    Core NATS (`jetstream: false`): a plain subscription (with `queue_group`, the group
    shares the messages). Delivery is at-most-once: NATS keeps nothing, so a message
    that arrives while wireway is down or disconnected is lost, and there is no
    acknowledgement; what arrives is ingested in batches.

    JetStream (`jetstream: true`): a durable pull consumer called `durable` on
    `stream` (created with the stream when `create: true`) keeps up to `batch`
    messages requested or held; the next ones arrive while a batch is stored.
    Acknowledgement: each message is acknowledged (`+ACK`) only once it is in the
    outbox of every output it was routed to, or in wireway's dead-letter queue;
    JetStream redelivers what was not acknowledged within `ack_wait` (at-least-once;
    a redelivered message keeps its messageId: an envelope's, or the `Nats-Msg-Id`
    header it was published with). When the buffer is full the batch is not waited
    on but negatively acknowledged (`nak` with `nak_delay`), so JetStream offers it
    again later (or to another wireway sharing the consumer). What wireway
    dead-letters (a body the `format:` cannot decode, a record a processor rejects)
    is stored in wireway's dead-letter queue with its reason and then terminated
    (`term`: JetStream never redelivers it). A message filtered out on purpose is
    acknowledged.

    nats-py reconnects by itself every `reconnect_wait` seconds; /health shows
    `nats: down` meanwhile.
    """

    subject: Annotated[str, Meta(description="subject to subscribe to (`*` and `>` wildcards allowed)")]
    queue_group: Annotated[
        str | None, Meta(description="core NATS: a queue group; its members share the messages")
    ] = None
    durable: Annotated[
        str | None, Meta(description="JetStream: the durable consumer's name (default `wireway-<pattern>`)")
    ] = None
    batch: Annotated[
        int,
        Meta(
            ge=2,
            le=10000,
            description="JetStream: messages requested or held unacknowledged at once (the in-flight "
            "window); they are stored in batches of up to half of it",
        ),
    ] = 500
    ack_wait: Annotated[
        float,
        Meta(
            gt=0,
            description="JetStream with `create`: seconds before an unacknowledged message is redelivered",
        ),
    ] = 30.0
    max_deliver: Annotated[
        int,
        Meta(ge=-1, description="JetStream with `create`: deliveries of one message at most (-1: no limit)"),
    ] = -1
    nak_delay: Annotated[
        float,
        Meta(ge=0, description="JetStream: seconds before a message refused for a full buffer comes back"),
    ] = 1.0
    dead_letters: Annotated[
        Literal["term", "ack"],
        Meta(description="JetStream: what becomes of a message wireway dead-lettered (`term` or `ack`)"),
    ] = "term"
    pending_limit: Annotated[
        int, Meta(ge=1, description="core NATS: messages held before the server's slow-consumer drop")
    ] = 65536

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            check_subject(self.subject, wildcards=True)
        except ValueError as exc:
            raise ValueError(f"{exc} - at `$.subject`") from None
        if self.jetstream and self.queue_group is not None:
            raise ValueError(
                "core NATS only; JetStream shares through the durable consumer - at `$.queue_group`"
            )
        if self.jetstream and self.stream is None:
            raise ValueError("JetStream needs the stream to consume - at `$.stream`")
        if self.durable is not None and not _NAME.fullmatch(self.durable):
            raise ValueError("letters, digits, - and _ only - at `$.durable`")
        if not self.jetstream and self.durable is not None:
            raise ValueError("only applies with `jetstream: true` - at `$.durable`")


class NatsOutputConfig(NatsConnection, kw_only=True):
    """Publish each message to a NATS subject: core NATS, or JetStream with a PubAck.

    `subject` is a template: `{payload.device_id}`, `{messageType}` or any dotted path
    into the envelope is filled per message; a message without that field goes to
    the dead-letter queue.

    Core NATS (`jetstream: false`): a batch counts as delivered once the server has it
    (a flush round trip); core NATS keeps nothing, so subscribers that are away miss
    it (at-most-once beyond the server).

    JetStream (`jetstream: true`): acknowledgement is the stream's PubAck: a batch is
    delivered once the stream stored every message of it; a missing PubAck (no stream
    on the subject, a timeout, a lost connection) is a retryable error and the batch
    is sent again. Each message carries the header `Nats-Msg-Id` = its messageId, so
    the stream drops a copy sent again within its duplicate window: a retry stores
    nothing twice. With `create: true` the stream is created when missing.
    """

    subject: Annotated[str, Meta(description="subject template, e.g. `sensors.{payload.device_id}`")]
    payload_only: Annotated[
        bool, Meta(description="publish the payload (true) or the whole envelope (false)")
    ] = False
    timeout: Annotated[float, Meta(gt=0, description="seconds to wait for the flush or the PubAcks")] = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            check_template(self.subject)
            check_subject(FIELD.sub("x", self.subject), wildcards=False)
        except ValueError as exc:
            raise ValueError(f"{exc} - at `$.subject`") from None
        if self.create and self.stream_subjects is None and "{" in self.subject:
            raise ValueError(
                "a templated subject needs `stream_subjects` to create the stream - at `$.create`"
            )
