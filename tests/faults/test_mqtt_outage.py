"""The MQTT broker stopped for 10 s and started again, under a QoS 1 load: every
reading the broker acknowledged (PUBACK to the publisher) is stored once.

The broker is a Mosquitto the test owns (persistence on, so wireway's persistent
session and its queued messages survive the restart; `max_queued_messages 0` so the
broker itself drops nothing, see the broker-side loss case of issue 14).
"""

from __future__ import annotations

import getpass
import json
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fault_harness import Wireway, assert_none_lost, record, sqlite_seqs, wait_delivered
from paho.mqtt import client as mqtt

from conftest import free_port

pytestmark = pytest.mark.faults

MOSQUITTO = "/usr/sbin/mosquitto"
OUTAGE = 10.0

PATTERN = """
pattern: {{name: mqtt-outage, type: message-bus}}
interfaces:
  input:
    - type: mqtt
      url: "mqtt://127.0.0.1:{port}"
      client_id: wireway-faults
      topics: ["faults/+"]
      qos: 1
      reconnect_min: 0.2
      reconnect_max: 1
      id_fields: [seq]
  output:
    - type: sql
      url: "sqlite:///{db}"
      table: t
      columns: {{message_id: messageId, seq: payload.seq}}
settings: {{buffer: durable, buffer_size: 200000, batch_size: 500}}
"""


class Mosquitto:
    """A broker on a free port with its own config and persistence folder."""

    def __init__(self, tmp: Path) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.skip(f"{MOSQUITTO} is not installed")
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        # `user`: started as root, Mosquitto would drop to `mosquitto`, which cannot
        # write the test's folder, and a broker that cannot save its sessions loses
        # what it acknowledged for a subscriber that is not back yet
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
            f"persistence true\npersistence_location {tmp}/\nmax_queued_messages 0\n"
            "autosave_interval 1\nlog_dest stderr\n"
        )
        self.log = tmp / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}: {self.log.read_text()[-1000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # saves its persistence file
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Publisher:
    """QoS 1 readings at a steady rate; a seq counts as acknowledged on its PUBACK."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="faults-publisher")
        self.client.reconnect_delay_set(0.1, 1)
        self.client.on_publish = self._on_publish
        self.mids: dict[int, int] = {}  # mid -> seq (mids stay below 65536: the load is smaller)
        self.acked_mids: set[int] = set()
        self.sent = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_publish(self, client: object, userdata: object, mid: int, rc: object, props: object) -> None:
        with self.lock:
            self.acked_mids.add(mid)

    def _run(self) -> None:
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline and self.sent < 60_000:
            for _ in range(30):
                body = json.dumps({"seq": self.sent, "pad": "x" * 32})
                info = self.client.publish(f"faults/{self.sent % 10}", body, qos=1)
                with self.lock:
                    self.mids[info.mid] = self.sent
                self.sent += 1
            self._stop.wait(0.1)

    def acked(self) -> set[int]:
        with self.lock:
            return {self.mids[m] for m in self.acked_mids if m in self.mids}

    def stop(self, timeout: float = 30) -> set[int]:
        """Stop sending, wait (bounded) for outstanding PUBACKs, disconnect."""
        self._stop.set()
        self.thread.join(10)
        deadline = time.monotonic() + timeout
        while len(self.acked()) < self.sent and time.monotonic() < deadline:
            time.sleep(0.1)
        self.client.disconnect()
        self.client.loop_stop()
        return self.acked()


def test_mqtt_broker_stopped_10s(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    broker.start()
    db = tmp_path / "out.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (message_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
    inst = Wireway(tmp_path, PATTERN.format(port=broker.port, db=db))
    publisher: Publisher | None = None
    try:
        inst.start()
        publisher = Publisher(broker.port)
        publisher.thread.start()
        wait_delivered(lambda: sqlite_seqs(db), set(), beyond=2000, timeout=60)
        broker.stop()
        time.sleep(OUTAGE)
        broker.start()
        mark = publisher.sent
        _, recovery = wait_delivered(lambda: sqlite_seqs(db), set(), beyond=mark, timeout=60)
        time.sleep(3)  # a little more load after the outage
        acked = publisher.stop()
        publisher = None
        seen, _ = wait_delivered(lambda: sqlite_seqs(db), acked)
    finally:
        if publisher is not None:
            publisher.stop(timeout=1)
        inst.stop()
        broker.stop()
    record("mqtt_broker_down", "MQTT broker stopped 10 s, then started (QoS 1 in)", acked, seen, recovery)
    assert_none_lost(acked, seen)
    assert sum(seen.values()) == len(seen), "a redelivered reading was stored twice"
