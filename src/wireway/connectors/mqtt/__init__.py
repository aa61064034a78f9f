"""The mqtt connector: a subscribing input and a publishing output over one hand-written
MQTT 3.1.1 / 5 client (`wire` the codec, `session` the connection, `inbound` / `outbound`).

**What the broker must hold.** The input acknowledges a QoS 1 message only once it is
stored, so while wireway is slower than the senders (a burst, a full buffer, a restart)
the broker keeps the rest for it, and a broker that runs out of room drops them: wireway
never sees those messages. With Mosquitto the limits are per client:

- `max_inflight_messages` (default 20): messages sent and not yet acknowledged, for an
  MQTT 3.1.1 client. An MQTT 5 client says its own window: the input sends Receive
  Maximum 65535 (`receive_maximum`), so `protocol: "5"` lets the broker hand messages
  over instead of queueing them.
- `max_queued_messages` (default 1000) and `max_queued_bytes`: messages waiting beyond
  the in-flight window, and for a persistent session while wireway is away. Past them
  Mosquitto drops QoS 1/2 messages and counts them in `$SYS/broker/publish/messages/dropped`.
- `persistence true`: queued messages survive a broker restart.

[deploy/mosquitto/mosquitto.conf](../../../../deploy/mosquitto/mosquitto.conf) sets these for
wireway (and a per-device ACL so a device publishes only under its own topic, whose
device id `topic_fields` checks against the payload's). The input watches the dropped
counter (`broker_stats`): when it rises, `wireway_mqtt_broker_dropped_total` counts the
loss and `/health` turns `degraded` with `mqtt_broker` saying why.
"""
