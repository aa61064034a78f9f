"""What the broker says about messages it lost: Mosquitto's `$SYS` counters.

wireway acknowledges a message only once it is stored, so while it is slow the broker
holds the rest, and a broker whose queue for the client is full (Mosquitto's
`max_queued_messages`) drops the overflow: wireway never sees those messages. The
broker counts them in `$SYS/broker/publish/messages/dropped` (for all its clients);
the input subscribes to it and turns a rise into a metric and a `degraded` health.
"""

from __future__ import annotations

import time

from wireway.observability import logging as log
from wireway.observability.metrics import MQTT_BROKER_DROPPED

logger = log.get("mqtt")

DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
SYS_PREFIX = b"$SYS/"
DEGRADED_SECONDS = 600.0  # how long a rise keeps /health degraded


class BrokerWatch:
    """The dropped-messages counter of one broker connection, as a metric and health."""

    def __init__(self, label: str) -> None:
        self.label = label
        # the counter as last read, kept across reconnections: what the broker dropped
        # while wireway was away (its queue for a persistent session full) counts too
        self.last: int | None = None
        self.dropped = 0  # rises seen since wireway started
        self.rose_at = 0.0  # time.monotonic() of the last rise

    def update(self, topic: bytes, payload: bytes) -> None:
        if topic.decode("utf-8", "replace") != DROPPED_TOPIC:
            return
        try:
            value = int(payload.strip() or b"0")
        except ValueError:
            return  # not Mosquitto's counter
        previous, self.last = self.last, value
        if previous is None:  # the first reading: what came before wireway is not its loss
            return
        # a value below the last one: the broker restarted, its counter from 0 again
        rise = value - previous if value >= previous else value
        if not rise:
            return
        self.dropped += rise
        self.rose_at = time.monotonic()
        MQTT_BROKER_DROPPED.labels(self.label).inc(rise)
        logger.error(
            "the MQTT broker dropped messages (its queue for a client was full): they are lost; "
            "raise max_queued_messages (see deploy/mosquitto/mosquitto.conf)",
            connector=self.label,
            dropped=rise,
            broker_total=value,
        )

    def health(self) -> str | None:
        """A reason while the last rise is recent, else None."""
        if not self.dropped or time.monotonic() - self.rose_at > DEGRADED_SECONDS:
            return None
        return (
            f"degraded: the broker reports {self.dropped} dropped messages since wireway "
            f"started (its $SYS counter, for all its clients); raise its max_queued_messages"
        )
