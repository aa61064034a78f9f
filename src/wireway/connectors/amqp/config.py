"""Options of the `amqp` input and output (RabbitMQ, AMQP 0-9-1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from wireway.connectors.templates import check_template

ExchangeType = Literal["direct", "topic", "fanout", "headers"]


class AmqpConnection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Options every amqp connector shares (how to reach the broker)."""

    url: Annotated[
        str,
        Meta(
            description="`amqp://user:password@host:port/vhost`, or `amqps://` for TLS; the "
            "vhost `/` is written `%2F` (or left out)"
        ),
    ] = "amqp://guest:guest@127.0.0.1:5672/"
    connect_timeout: Annotated[float, Meta(gt=0, description="seconds to connect and open a channel")] = 5.0
    heartbeat: Annotated[int, Meta(ge=0, le=3600, description="seconds between heartbeats (0: none)")] = 30
    reconnect_min: Annotated[float, Meta(gt=0, description="seconds before the first reconnect attempt")] = (
        0.5
    )
    reconnect_max: Annotated[
        float, Meta(gt=0, description="cap of the exponential reconnect backoff (with jitter)")
    ] = 30.0
    exchange: Annotated[str, Meta(description='exchange name (`""`: the default exchange)')] = ""
    exchange_type: Annotated[ExchangeType, Meta(description="type of the exchange when it is declared")] = (
        "topic"
    )
    declare_exchange: Annotated[
        bool, Meta(description="declare `exchange` (durable) at connect; else it must exist")
    ] = False
    quorum: Annotated[
        bool,
        Meta(description="declare the queue as a quorum queue (`x-queue-type: quorum`, replicated)"),
    ] = False
    dead_letter_exchange: Annotated[
        str | None,
        Meta(description="when declaring the queue: its `x-dead-letter-exchange`"),
    ] = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ValueError("expected an amqp:// or amqps:// URL - at `$.url`")
        try:
            parts.port  # noqa: B018  (raises ValueError for a bad port)
        except ValueError:
            raise ValueError("invalid port in the URL - at `$.url`") from None
        if not parts.hostname:
            raise ValueError("the URL has no host - at `$.url`")
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("must not exceed reconnect_max - at `$.reconnect_min`")
        if self.exchange.startswith("amq.") and self.declare_exchange:
            raise ValueError(
                "the `amq.` exchanges are the broker's own; do not declare them - at `$.exchange`"
            )
        if self.declare_exchange and not self.exchange:
            raise ValueError("the default exchange cannot be declared; name one - at `$.declare_exchange`")

    def queue_arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.quorum:
            args["x-queue-type"] = "quorum"
        if self.dead_letter_exchange is not None:
            args["x-dead-letter-exchange"] = self.dead_letter_exchange
        return args


class AmqpInputConfig(AmqpConnection, kw_only=True):
    """Consume a RabbitMQ queue (AMQP 0-9-1, aio-pika).

    Acknowledgement: a delivery is acknowledged to the broker (`basic.ack`) only once
    every record it holds is in the outbox of each output it was routed to, or in
    wireway's dead-letter queue; until then RabbitMQ keeps it, and redelivers it after
    a lost connection or a restart of wireway (at-least-once: a redelivered message
    keeps its messageId, an envelope's or the AMQP `message_id` property it was
    published with, so an idempotent output or `dedupe` drops the copy).
    `prefetch` is the in-flight window: RabbitMQ sends no more unacknowledged
    deliveries than that; they are ingested in batches, and while a batch waits for
    room in a full buffer no more arrive.

    What wireway dead-letters (a body the `format:` cannot decode, a record a
    processor rejects) is stored in wireway's dead-letter queue with its reason (see
    `wireway dlq`), and then, with `dead_letters: reject` (the default), the delivery
    is rejected with `requeue=false`: RabbitMQ routes it to the queue's dead-letter
    exchange if the queue has one (`dead_letter_exchange` when wireway declares it, or
    a policy), else drops it. With `dead_letters: ack` it is acknowledged instead.
    A record filtered out on purpose (`filter`) is acknowledged.

    With `declare: true` the queue is declared (durable; `quorum: true` makes it a
    quorum queue) and, when `exchange` is set, bound to it with `routing_key`.
    A lost connection, or a consumer the broker cancels (its queue was deleted), is
    retried with exponential backoff; /health shows `amqp: down` meanwhile.
    """

    queue: Annotated[str, Meta(description="the queue to consume")]
    declare: Annotated[bool, Meta(description="declare the queue (durable) at connect")] = False
    routing_key: Annotated[
        str,
        Meta(description="binding key of the queue to `exchange` (`#` matches all on a topic exchange)"),
    ] = "#"
    prefetch: Annotated[
        int, Meta(ge=1, le=65535, description="unacknowledged deliveries at once (the in-flight window)")
    ] = 1000
    dead_letters: Annotated[
        Literal["reject", "ack"],
        Meta(
            description="what becomes of a delivery wireway dead-lettered: `reject` (requeue=false: "
            "to the queue's dead-letter exchange) or `ack`"
        ),
    ] = "reject"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.queue:
            raise ValueError("must not be empty - at `$.queue`")
        if (self.quorum or self.dead_letter_exchange is not None) and not self.declare:
            key = "quorum" if self.quorum else "dead_letter_exchange"
            raise ValueError(f"only applies when wireway declares the queue (declare: true) - at `$.{key}`")


class AmqpOutputConfig(AmqpConnection, kw_only=True):
    """Publish each message to a RabbitMQ exchange (AMQP 0-9-1, aio-pika).

    `routing_key` is a template: `{payload.device_id}`, `{messageType}` or any dotted
    path into the envelope is filled per message; a message without that field goes to
    the dead-letter queue. Messages are persistent (delivery mode 2) and carry the
    messageId as their AMQP `message_id`, so a consumer can drop a redelivered copy.

    Acknowledgement: publisher confirms are on; a batch is delivered once RabbitMQ
    confirmed (`basic.ack`) every message of it, which for a persistent message in a
    durable queue means it is on disk. A `basic.nack`, a message returned as
    unroutable (`mandatory: true` and no queue bound for its routing key) or no
    confirm within `confirm_timeout` is a retryable error: the batch is sent again
    with backoff (the copies that were confirmed arrive twice, with the same
    `message_id`). While the broker is unreachable the output reconnects with backoff
    and /health shows `amqp_out: down`.

    `queue` declares a durable queue at connect (`quorum: true`: a quorum queue) and
    binds it to `exchange` with `bind_key`: a pattern can thus create what it
    publishes to.
    """

    routing_key: Annotated[str, Meta(description="routing key template, e.g. `sensors.{payload.device_id}`")]
    queue: Annotated[str | None, Meta(description="a durable queue to declare (and bind) at connect")] = None
    bind_key: Annotated[
        str | None, Meta(description="binding key of `queue` to `exchange` (default: `routing_key`)")
    ] = None
    persistent: Annotated[bool, Meta(description="delivery mode 2: kept on disk by the broker")] = True
    mandatory: Annotated[
        bool, Meta(description="an unroutable message is returned (a retryable error), not dropped")
    ] = True
    payload_only: Annotated[
        bool, Meta(description="publish the payload (true) or the whole envelope (false)")
    ] = False
    confirm_timeout: Annotated[float, Meta(gt=0, description="seconds to wait for the broker's confirms")] = (
        30.0
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            check_template(self.routing_key)
        except ValueError as exc:
            raise ValueError(f"{exc} - at `$.routing_key`") from None
        if len(self.routing_key.encode()) > 255:
            raise ValueError("at most 255 bytes - at `$.routing_key`")
        if not self.exchange and not self.routing_key:
            raise ValueError("the default exchange routes by queue name: set one - at `$.routing_key`")
        if self.queue == "":
            raise ValueError("must not be empty - at `$.queue`")
        if (self.quorum or self.dead_letter_exchange is not None) and self.queue is None:
            key = "quorum" if self.quorum else "dead_letter_exchange"
            raise ValueError(f"only applies to a queue wireway declares (`queue:`) - at `$.{key}`")
        if self.bind_key is not None and (self.queue is None or not self.exchange):
            raise ValueError("binds `queue` to `exchange`: set both - at `$.bind_key`")
