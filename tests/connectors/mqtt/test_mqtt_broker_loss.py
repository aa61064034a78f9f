"""Loss inside the broker: wireway acknowledges a QoS 1 message only once it is stored,
so while wireway is stopped (SIGSTOP here) the broker holds the rest, and a stock
Mosquitto (20 in flight, `max_queued_messages 1000`) drops a burst's overflow. wireway
cannot get those messages back; it must say so: `wireway_mqtt_broker_dropped_total`
and a `degraded` /health naming the broker. The limits of deploy/mosquitto/mosquitto.conf,
or MQTT 5 with wireway's Receive Maximum of 65535, keep the whole burst.

Each test starts its own Mosquitto and the real `wireway run`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from own_mosquitto import Publisher, Wireway, mosquitto

from wireway.connectors.mqtt.brokerwatch import DROPPED_TOPIC, BrokerWatch

BURST = 3000
STOCK = "allow_anonymous true\npersistence false\nsys_interval 1\nmax_queued_messages 1000\n"
SHIPPED = Path(__file__).parents[3] / "deploy" / "mosquitto" / "mosquitto.conf"
LOCAL = ("listener", "password_file", "acl_file", "persistence", "allow_anonymous", "log_", "sys_interval")


def shipped() -> str:
    """deploy/mosquitto/mosquitto.conf with its limits, on a local port without passwords."""
    kept = [
        line
        for line in SHIPPED.read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(LOCAL)
    ]
    return "\n".join([*kept, "allow_anonymous true", "persistence false", "sys_interval 1", ""])


def pattern(port: int, out: Path, protocol: str) -> str:
    return f"""
pattern: {{name: burst}}
interfaces:
  input:
    - {{type: mqtt, url: "mqtt://127.0.0.1:{port}", topics: ["burst/+"], qos: 1,
       protocol: "{protocol}", client_id: wireway-burst}}
  output:
    - {{type: file, address: "{out}", format: jsonl}}
"""


def burst(tmp_path: Path, conf: str, protocol: str) -> tuple[int, float, dict[str, object]]:
    """(messages stored by wireway, the dropped metric, /health) once the burst settled."""
    out = tmp_path / "out.jsonl"
    with mosquitto(tmp_path, conf) as port:
        wireway = Wireway(tmp_path, pattern(port, out, protocol))
        publisher = None
        try:
            wireway.wait(lambda: wireway.get("/health").json()["services"]["mqtt"] == "up", what="mqtt up")
            publisher = Publisher(port)
            wireway.pause()  # a slow consumer at its extreme: nothing is read or acknowledged
            for n in range(BURST):
                publisher.publish(f"burst/d{n % 10}", {"n": n})
            publisher.wait_acked(BURST)  # the broker has taken every one
            wireway.resume()

            def stored() -> int:
                return len(out.read_text().splitlines()) if out.exists() else 0

            def settled() -> bool:
                dropped = wireway.metric("wireway_mqtt_broker_dropped_total")
                return stored() + dropped >= BURST and stored() > 0

            wireway.wait(settled, timeout=60, what="every message stored or reported dropped")
            return (
                stored(),
                wireway.metric("wireway_mqtt_broker_dropped_total"),
                wireway.get("/health").json(),
            )
        finally:
            if publisher is not None:
                publisher.close()
            wireway.stop()


def test_a_stock_broker_drops_a_burst_and_wireway_says_so(tmp_path: Path) -> None:
    stored, dropped, health = burst(tmp_path, STOCK, "3.1.1")
    assert dropped > 0
    assert stored + dropped == BURST  # each message either stored or counted as lost
    assert health["status"] == "degraded"
    services = health["services"]
    assert isinstance(services, dict)
    assert services["mqtt"] == "up"
    assert f"the broker reports {int(dropped)} dropped messages" in services["mqtt_broker"]
    assert "max_queued_messages" in services["mqtt_broker"]


@pytest.mark.parametrize(("conf", "protocol"), [(shipped(), "3.1.1"), (STOCK, "5")], ids=["shipped", "mqtt5"])
def test_the_shipped_limits_or_mqtt5_keep_the_whole_burst(tmp_path: Path, conf: str, protocol: str) -> None:
    stored, dropped, health = burst(tmp_path, conf, protocol)
    assert (stored, dropped) == (BURST, 0)
    services = health["services"]
    assert isinstance(services, dict)
    assert "mqtt_broker" not in services


def test_the_dropped_counter_is_read_across_reconnects_and_broker_restarts() -> None:
    watch = BrokerWatch("unit.mqtt")
    topic = DROPPED_TOPIC.encode()
    watch.update(topic, b"40")  # the first reading: drops before wireway are not counted
    assert (watch.dropped, watch.health()) == (0, None)
    watch.update(b"$SYS/broker/uptime", b"100 seconds")  # other counters are ignored
    watch.update(topic, b"not a number")
    watch.update(topic, b"40")
    assert watch.dropped == 0
    watch.update(topic, b"45")  # after a reconnect too: dropped while wireway was away
    assert watch.dropped == 5
    watch.update(topic, b"3")  # the broker restarted: its counter began from 0
    assert watch.dropped == 8
    health = watch.health()
    assert health is not None
    assert health.startswith("degraded: the broker reports 8 dropped messages")
