"""Options of the `mqtt` input and output."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\}")


def template_parts(template: str) -> list[tuple[str, str]]:
    """'a/{payload.x}/b' -> [("a/", "payload.x"), ("/b", "")] (raises ValueError)."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        parts.append((template[pos : m.start()], m.group(1)))
        pos = m.end()
    parts.append((template[pos:], ""))
    for text, _ in parts:
        if "{" in text or "}" in text:
            raise ValueError("a `{...}` placeholder must be a dotted path like {payload.device_id}")
        if "+" in text or "#" in text:
            raise ValueError("a topic to publish to cannot contain the wildcards + or #")
    return parts


def check_filter(topic: str) -> None:
    """Raise ValueError unless `topic` is a valid MQTT topic filter."""
    if not topic:
        raise ValueError("a topic filter cannot be empty")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"`{topic}`: # must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError(f"`{topic}`: + must be a whole level")


class MqttConnection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Options every mqtt connector shares (how to reach the broker)."""

    url: Annotated[
        str,
        Meta(
            description="`mqtt://host:port`, or `mqtts://host:port` for TLS (port 8883 by "
            "default); `mqtt://user:pass@host` is accepted"
        ),
    ] = "mqtt://127.0.0.1:1883"
    username: Annotated[str | None, Meta(description="overrides the user of the URL")] = None
    password: Annotated[str | None, Meta(description="overrides the password of the URL")] = None
    client_id: Annotated[str | None, Meta(description="MQTT client id")] = None
    protocol: Annotated[Literal["3.1.1", "5", 5], Meta(description='MQTT version: "3.1.1" or "5"')] = "3.1.1"
    keepalive: Annotated[
        int, Meta(ge=5, le=65535, description="seconds between pings on an idle connection")
    ] = 30
    connect_timeout: Annotated[
        float, Meta(gt=0, description="seconds for TCP connect, TLS handshake and CONNACK")
    ] = 5.0
    reconnect_min: Annotated[float, Meta(gt=0, description="seconds before the first reconnect attempt")] = (
        1.0
    )
    reconnect_max: Annotated[
        float, Meta(gt=0, description="cap of the exponential reconnect backoff (with jitter)")
    ] = 30.0
    max_packet_size: Annotated[
        int,
        Meta(
            ge=256,
            le=268_435_460,
            description="largest packet accepted from the broker, in bytes: the input skips a "
            "larger PUBLISH as it arrives and sends its message to the DLQ (it does not announce "
            "the limit, so an MQTT 5 broker does not drop such messages unseen); a malformed "
            "packet closes the connection; both are counted in wireway_mqtt_malformed_packets_total",
        ),
    ] = 1 << 20
    tls_ca: Annotated[
        str | None, Meta(description="CA bundle to verify the broker (default: system CAs)")
    ] = None
    tls_cert: Annotated[str | None, Meta(description="client certificate (PEM) for mTLS")] = None
    tls_key: Annotated[str | None, Meta(description="private key (PEM) of `tls_cert`")] = None
    tls_insecure: Annotated[
        bool, Meta(description="skip verifying the broker's certificate and host name")
    ] = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("expected an mqtt:// or mqtts:// URL - at `$.url`")
        try:
            parts.port  # noqa: B018  (raises ValueError for a bad port)
        except ValueError:
            raise ValueError("invalid port in the URL - at `$.url`") from None
        if not parts.hostname:
            raise ValueError("the URL has no host - at `$.url`")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError("an mqtt URL takes no path or query - at `$.url`")
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("must not exceed reconnect_max - at `$.reconnect_min`")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together - at `$.tls_cert`")
        if self.client_id is not None and not self.client_id:
            raise ValueError("must not be empty - at `$.client_id`")

    @property
    def mqtt5(self) -> bool:
        return str(self.protocol) == "5"


class MqttInputConfig(MqttConnection, kw_only=True):
    """Subscribe to MQTT topics; each message's payload must be JSON (UTF-8).

    A QoS 1/2 message is acknowledged to the broker (PUBACK) only once it is in the
    outbox of every output it was routed to, or in the dead-letter queue; with
    `clean_session: false` (the default) the broker keeps the subscription and
    redelivers what was not acknowledged after a reconnect or a restart of wireway
    (at-least-once; use `id_fields` to give a redelivery the same messageId).
    The messages of one read are ingested as one batch; while a batch waits for room
    in a full buffer the connection is not read (the broker holds the rest).

    Invalid JSON, an empty payload, a message over `max_packet_size` (skipped as it
    arrives, without keeping its bytes) and `topic_fields` mismatches (a device
    publishing on its own topic with another device's id) go to the dead-letter queue
    with the reason, and are acknowledged. A JSON object with messageId, messageType
    and payload is taken as an envelope. The broker being down never stops wireway: the input reconnects
    with exponential backoff and jitter, and /health shows `mqtt: down` meanwhile.
    The default client id is `wireway-<pattern>`: give two mqtt inputs of one
    pattern, or several wireway instances sharing a `shared_group`, distinct ids.
    """

    topics: Annotated[
        list[str], Meta(min_length=1, description="topic filters to subscribe to (+ and # work)")
    ]
    client_id: Annotated[str | None, Meta(description="MQTT client id (default `wireway-<pattern>`)")] = None
    qos: Annotated[
        Literal[0, 1, 2],
        Meta(
            description="subscription QoS: 1 is at-least-once; 0 may lose messages; 2 sends "
            "PUBREC only once the message is stored (then PUBCOMP on the broker's PUBREL)"
        ),
    ] = 1
    clean_session: Annotated[
        bool,
        Meta(
            description="false: a persistent session, so the broker queues and redelivers "
            "unacknowledged messages (MQTT 5: clean_start false + `session_expiry`)"
        ),
    ] = False
    session_expiry: Annotated[
        int,
        Meta(ge=0, description="seconds the broker keeps the session of a client that is away (MQTT 5)"),
    ] = 86400
    shared_group: Annotated[
        str | None,
        Meta(
            description="subscribe as `$share/<group>/<topic>` so several consumers share the "
            "load (MQTT 5, or a broker that supports it with 3.1.1 such as Mosquitto)"
        ),
    ] = None
    max_inflight: Annotated[
        int,
        Meta(
            ge=1,
            le=65535,
            description="messages held unacknowledged before reading pauses (the largest batch)",
        ),
    ] = 1000
    receive_maximum: Annotated[
        int,
        Meta(
            ge=1,
            le=65535,
            description="MQTT 5: the Receive Maximum sent in CONNECT, how many QoS 1/2 messages "
            "the broker may hand over before wireway acknowledges; the largest lets it send "
            "rather than queue (a queue over its `max_queued_messages` is dropped), while "
            "wireway stops reading at `max_inflight` (MQTT 3.1.1: the broker's "
            "`max_inflight_messages` decides)",
        ),
    ] = 65535
    broker_stats: Annotated[
        bool,
        Meta(
            description="also subscribe to `$SYS/broker/publish/messages/dropped` (Mosquitto): "
            "when it rises, wireway_mqtt_broker_dropped_total counts it and /health is "
            "degraded (`mqtt_broker`) for 10 minutes; a broker that refuses it is left alone",
        ),
    ] = True
    linger: Annotated[
        float,
        Meta(
            ge=0,
            le=1,
            description="seconds a batch waits, from its first message, for more before it "
            "is ingested: at a low rate, fewer and fuller outbox commits and output writes "
            "(far less CPU per message) for at most this much latency (under load a batch "
            "waits for a free ingest call anyway); 0 ingests each read at once",
        ),
    ] = 0.005
    topic_fields: Annotated[
        dict[str, int],
        Meta(
            description="payload key -> topic level (0-based; negative counts from the end), "
            "e.g. `{device_id: 2}` or `{device_id: -2}` for `sensors/+/data`: a missing key "
            "is filled from the topic, a different value sends the message to the DLQ"
        ),
    ] = {}
    id_fields: Annotated[
        list[str],
        Meta(
            description="payload keys whose values make the messageId (a UUIDv5), so a "
            "redelivered message keeps its id"
        ),
    ] = []

    def __post_init__(self) -> None:
        super().__post_init__()
        for i, topic in enumerate(self.topics):
            try:
                check_filter(topic)
            except ValueError as exc:
                raise ValueError(f"{exc} - at `$.topics[{i}]`") from None
            if topic.startswith("$share/"):
                raise ValueError(f"use shared_group instead of $share/ - at `$.topics[{i}]`")
            if "#" in topic:
                continue
            for key, index in self.topic_fields.items():
                if not -len(topic.split("/")) <= index < len(topic.split("/")):
                    raise ValueError(
                        f"level {index} is beyond the topic `{topic}` - at `$.topic_fields.{key}`"
                    )
        if self.shared_group == "":  # `${WIREWAY_MQTT_SHARED_GROUP:-}` left unset
            self.shared_group = None
        if self.shared_group is not None and not re.fullmatch(r"[^/+#]+", self.shared_group):
            raise ValueError("must be a non-empty name without / + # - at `$.shared_group`")


class MqttOutputConfig(MqttConnection, kw_only=True):
    """Publish each message to an MQTT broker.

    `topic` is a template: `{payload.device_id}`, `{source}` or any dotted path into
    the envelope is filled per message; a message without that field goes to the
    dead-letter queue. A batch is confirmed once the broker acknowledged every
    message (PUBACK for QoS 1, PUBCOMP for QoS 2, written to the socket for QoS 0).
    While the broker is unreachable, or when it does not acknowledge within
    `ack_timeout`, the batch is retried with backoff and the circuit breaker opens;
    the output reconnects by itself and /health shows `mqtt_out: down` meanwhile.
    """

    topic: Annotated[str, Meta(description="topic template, e.g. `sensors/{payload.device_id}`")]
    client_id: Annotated[str | None, Meta(description="MQTT client id (default `wireway-<pattern>-out`)")] = (
        None
    )
    qos: Annotated[Literal[0, 1, 2], Meta(description="publish QoS")] = 1
    retain: Annotated[bool, Meta(description="ask the broker to retain each message")] = False
    payload_only: Annotated[
        bool, Meta(description="publish the payload (true) or the whole envelope (false)")
    ] = True
    ack_timeout: Annotated[
        float, Meta(gt=0, description="seconds to wait for the broker's acknowledgements")
    ] = 10.0
    max_inflight: Annotated[
        int,
        Meta(
            ge=1,
            le=65535,
            description="QoS 1/2 messages sent before waiting for acks (an MQTT 5 broker's "
            "Receive Maximum lowers it; with 3.1.1 and QoS 2 keep it within the broker's "
            "limit, 20 for Mosquitto's default)",
        ),
    ] = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.topic:
            raise ValueError("must not be empty - at `$.topic`")
        try:
            template_parts(self.topic)
        except ValueError as exc:
            raise ValueError(f"{exc} - at `$.topic`") from None
