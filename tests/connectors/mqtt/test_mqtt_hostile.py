"""Hostile MQTT input: random binary payloads, empty payloads, payloads over the maximum,
invalid UTF-8, a device publishing another device's id on its own topic. Each goes to
the DLQ with its reason and is counted; the input stays connected and the good
messages around them arrive.

The input is configured as the sensor application's (`topic_fields: {device_id: -2}`,
`id_fields`), against a Mosquitto of the test's own.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from own_mosquitto import Publisher, Wireway, mosquitto, passwords

from wireway.runtime.dlq import DlqAdmin

MAX = 4096
ACL = Path(__file__).parents[3] / "deploy" / "mosquitto" / "acl"


def pattern(port: int, out: Path, prefix: str = "nb", user: str = "", protocol: str = "3.1.1") -> str:
    return f"""
pattern: {{name: hostile}}
interfaces:
  input:
    - type: mqtt
      url: "mqtt://{user}127.0.0.1:{port}"
      client_id: wireway-hostile
      protocol: "{protocol}"
      topics: ["{prefix}/sensors/+/data"]
      topic_fields: {{device_id: -2}}
      id_fields: [device_id, timestamp]
      max_packet_size: {MAX}
  output:
    - {{type: file, address: "{out}", format: jsonl}}
"""


def reading(device: str, n: int) -> dict[str, Any]:
    return {"device_id": device, "timestamp": f"2025-10-16T18:33:{n:02d}Z", "sensors": {"n": n}}


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_hostile_payloads_go_to_the_dlq_with_reasons_and_the_input_stays_up(
    tmp_path: Path, protocol: str
) -> None:
    rng = random.Random(14)
    out = tmp_path / "out.jsonl"
    hostile: list[tuple[str, bytes, str]] = [  # (topic, payload, the reason's words)
        ("nb/sensors/esp-1/data", b"", "empty payload on topic nb/sensors/esp-1/data"),
        ("nb/sensors/esp-1/data", b"x" * (MAX * 4), "over max_packet_size (4,096)"),
        ("nb/sensors/esp-1/data", b"\xff\xfe{not json", "invalid JSON on topic nb/sensors/esp-1/data"),
        # esp-1 (allowed to publish under its own topic) sends a reading for esp-2
        (
            "nb/sensors/esp-1/data",
            json.dumps(reading("esp-2", 1)).encode(),
            'topic mismatch: device_id is "esp-2" in the payload but "esp-1" in the topic',
        ),
        ("nb/sensors/esp-1/data", b"[1, 2", "invalid JSON"),
    ]
    for _ in range(20):  # random bytes of random sizes, some over the maximum
        size = rng.choice([1, 7, 100, 1000, MAX * 2])
        hostile.append(("nb/sensors/esp-3/data", rng.randbytes(size) + b"\x00", ""))
    with mosquitto(tmp_path, "allow_anonymous true\npersistence false\n") as port:
        wireway = Wireway(tmp_path, pattern(port, out, protocol=protocol))
        publisher = None
        try:
            wireway.wait(lambda: wireway.get("/health").json()["services"]["mqtt"] == "up", what="mqtt up")
            publisher = Publisher(port)
            publisher.publish("nb/sensors/esp-1/data", reading("esp-1", 0))
            for topic, payload, _ in hostile:
                publisher.publish(topic, payload)
            publisher.publish("nb/sensors/esp-1/data", reading("esp-1", 2))
            publisher.wait_acked(len(hostile) + 2)

            def stored() -> int:
                return len(out.read_text().splitlines()) if out.exists() else 0

            def rejected() -> float:
                labels = 'component="ingest",outcome="dead_letter",pattern="hostile"'
                return wireway.metric(f"wireway_messages_total{{{labels}}}")

            wireway.wait(lambda: stored() == 2 and rejected() == len(hostile), what="all handled")
            health = wireway.get("/health").json()
            assert health["services"]["mqtt"] == "up"
            assert wireway.metric("wireway_mqtt_malformed_packets_total") >= 2  # the oversized ones
        finally:
            if publisher is not None:
                publisher.close()
            wireway.stop()
    assert wireway.proc.returncode == 0  # stopped by SIGTERM, not crashed
    assert "Traceback" not in (tmp_path / "wireway.log").read_text()
    assert [json.loads(x)["payload"]["sensors"]["n"] for x in out.read_text().splitlines()] == [0, 2]
    with DlqAdmin(tmp_path / "data" / "buffer.db") as admin:
        rows = admin.list("hostile")
    assert len(rows) == len(hostile)
    reasons = [str(row["reason"]) for row in rows]
    for _, _, words in hostile:
        assert any(words in reason for reason in reasons), (words, reasons)
    assert all(reason for reason in reasons)  # every one says why


def test_a_device_cannot_speak_for_another_with_the_shipped_acl(tmp_path: Path) -> None:
    """deploy/mosquitto/acl: esp-1 (its device id as user name) may publish only under its
    own topic, so the broker refuses esp-2's topic; on its own topic a reading naming
    esp-2 goes to the DLQ (`topic_fields`). esp-1's own reading is stored."""
    users = {"wireway": "w-pass", "esp-1": "e1-pass", "esp-2": "e2-pass"}
    conf = f"allow_anonymous false\npassword_file {passwords(tmp_path, users)}\nacl_file {ACL}\n"
    out = tmp_path / "out.jsonl"
    with mosquitto(tmp_path, conf + "persistence false\n") as port:
        wireway = Wireway(tmp_path, pattern(port, out, "neurobuild", "wireway:w-pass@"))
        device = None
        try:
            wireway.wait(lambda: wireway.get("/health").json()["services"]["mqtt"] == "up", what="mqtt up")
            device = Publisher(port, auth=("esp-1", "e1-pass"))
            device.publish("neurobuild/sensors/esp-2/data", reading("esp-2", 1))  # refused by the broker
            device.publish("neurobuild/sensors/esp-1/data", reading("esp-2", 2))  # spoofed id: to the DLQ
            device.publish("neurobuild/sensors/esp-1/data", reading("esp-1", 3))
            device.wait_acked(3)
            wireway.wait(lambda: out.exists() and out.read_text().strip() != "", what="the good reading")
        finally:
            if device is not None:
                device.close()
            wireway.stop()
    assert [json.loads(x)["payload"]["sensors"]["n"] for x in out.read_text().splitlines()] == [3]
    with DlqAdmin(tmp_path / "data" / "buffer.db") as admin:
        (row,) = admin.list("hostile")
    assert row["reason"] == 'topic mismatch: device_id is "esp-2" in the payload but "esp-1" in the topic'
