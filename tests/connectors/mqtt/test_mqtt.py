"""The mqtt input and output against the real Mosquitto broker on 127.0.0.1:1883.

Every test uses its own topic prefix and client ids (built from the test name plus a
random part), so runs and other users of the broker never see each other's messages.
The test's own MQTT clients are plain paho clients with paho's network thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import free_port, need_service
from support import base_url, engine_from, eventually, written_lines
from wireway.connectors.mqtt.input import MqttInput
from wireway.connectors.mqtt.output import Topic
from wireway.connectors.mqtt.session import Broker, parse_url
from wireway.envelope import Message, stable_id
from wireway.runtime.dlq import DlqAdmin
from wireway.runtime.engine import Engine


def unique(request: pytest.FixtureRequest) -> str:
    """A topic prefix (and client id stem) of this test alone."""
    return f"wwtest/{request.node.name}/{uuid.uuid4().hex[:8]}"


def client_id(prefix: str, role: str = "in") -> str:
    return f"{prefix.replace('/', '-')}-{role}"


class Peer:
    """A paho client of the test: publishes, subscribes and records what it sees."""

    def __init__(
        self,
        cid: str = "",
        *,
        clean: bool = True,
        port: int = 1883,
        tls_ca: Path | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean if cid else True
        )
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        if auth is not None:
            self.client.username_pw_set(*auth)
        self.lock = threading.Lock()
        self.acked: set[int] = set()
        self.messages: list[paho.MQTTMessage] = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.client.on_publish = self._published
        self.client.on_message = self._message
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        assert self.connected.wait(5), "test client could not connect"

    def _published(self, c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
        with self.lock:
            self.acked.add(mid)

    def _message(self, c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(msg)

    def publish(self, topic: str, payload: Any, qos: int = 1) -> int:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = self.client.publish(topic, body, qos)
        assert info.rc == paho.MQTT_ERR_SUCCESS
        return info.mid

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, 1)
        assert self.subscribed.wait(5)

    def payloads(self) -> list[Any]:
        with self.lock:
            return [json.loads(m.payload) for m in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def leftovers(cid: str, seconds: float = 0.5) -> list[Any]:
    """What the broker still holds for the persistent session `cid` (then delete it)."""
    peer = Peer(cid, clean=False)
    await asyncio.sleep(seconds)
    peer.close()
    Peer(cid, clean=True).close()  # a clean connect discards the session
    return peer.payloads()


def lines(path: Path) -> list[Any]:
    return written_lines(path)


def dead_letters(tmp: Path, pattern: str) -> list[dict[str, Any]]:
    with DlqAdmin(tmp / "data" / "buffer.db") as admin:
        rows: list[dict[str, Any]] = admin.list(pattern)
    return rows


def input_state(engine: Engine) -> str:
    return str(engine.status()["patterns"][0]["inputs"][0]["state"])


def test_url_parsing_and_topic_templates() -> None:
    """Pure helpers (no broker): broker URLs and topic templates."""
    assert parse_url("mqtt://127.0.0.1") == Broker("127.0.0.1", 1883, False)
    assert parse_url("mqtts://u%40x:p%3Aw@h:8884") == Broker("h", 8884, True, "u@x", "p:w")
    assert parse_url("mqtts://h").port == 8883
    topic = Topic("s/{payload.device_id}/{source}/{payload.a.b}")
    msg = Message("id", "2026-01-01T00:00:00Z", {"device_id": 7, "a": {"b": True}}, source="p.http")
    assert topic.render(msg) == ("s/7/p.http/true", None)
    assert topic.render(Message("id", "t", {"device_id": "x"}))[1] == (
        "topic template: payload.a.b is missing"
    )
    assert Topic("s/{payload.d}").render(Message("id", "t", {"d": "a+b"}))[1] == (
        "topic template: payload.d contains + # or NUL"
    )


async def test_mqtt_in_to_file_and_invalid_json_to_the_dlq(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """200 QoS 1 messages reach the file; invalid JSON is dead-lettered; all are acknowledged."""
    need_service("mosquitto", 1883)
    prefix, out = unique(request), tmp_path / "out.jsonl"
    cid = client_id(prefix)
    text = f"""
pattern: {{name: mqtt_file}}
interfaces:
  input:
    - {{type: mqtt, topics: ["{prefix}/#"], client_id: "{cid}"}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""
    async with engine_from(tmp_path, text) as engine:
        assert input_state(engine) == "running"
        peer = Peer()
        try:
            for n in range(200):
                peer.publish(f"{prefix}/dev{n % 5}/data", {"n": n})
            peer.publish(f"{prefix}/dev0/data", b"{not json")
            await eventually(lambda: len(lines(out)) == 200)
            assert engine.sqlite is not None
            await eventually(lambda: engine.sqlite.dlq_depth("mqtt_file") == 1)
        finally:
            peer.close()
    assert sorted(x["n"] for x in lines(out)) == list(range(200))
    (row,) = dead_letters(tmp_path, "mqtt_file")
    assert row["reason"].startswith(f"invalid JSON on topic {prefix}/dev0/data: ")
    assert await leftovers(cid) == []  # every message, the invalid one too, was PUBACKed


async def test_puback_waits_for_the_outbox(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """With a buffer of 2 and an output that cannot deliver, only 2 messages are acknowledged.

    The broker acknowledges a publisher as soon as it has a message, so what wireway
    acknowledged is read from the session: the broker redelivers exactly the others.
    """
    need_service("mosquitto", 1883)
    prefix = unique(request)
    cid = client_id(prefix)
    text = f"""
pattern: {{name: mqtt_full}}
interfaces:
  input:
    - {{type: mqtt, topics: ["{prefix}/#"], client_id: "{cid}"}}
  output:
    - {{type: http_client, address: "http://127.0.0.1:{free_port()}/x", timeout: 0.5}}
settings: {{buffer_size: 2, retries: 1000, backoff_max: 0.2, timeout: 1}}
"""
    async with engine_from(tmp_path, text) as engine:
        peer = Peer()
        try:
            for n in range(6):
                peer.publish(f"{prefix}/d", {"n": n})
            runner = engine.runners[0]
            await eventually(lambda: runner.counts["in"] == 2 and runner.routes[0].queue.depth == 2)
            await asyncio.sleep(0.5)  # nothing else gets in while the buffer is full
            assert runner.counts["in"] == 2
            mqtt_input = runner.inputs[0]
            assert isinstance(mqtt_input, MqttInput)
            assert mqtt_input.link.paused  # not reading while the buffer is full
        finally:
            peer.close()
    redelivered = await leftovers(cid)
    assert sorted(x["n"] for x in redelivered) == [2, 3, 4, 5]


async def test_a_batch_is_what_arrives_within_linger_of_its_first_message(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Messages a broker sends one by one (each read at once: the input's socket ACKs
    at once) are ingested as one batch when they come within `linger` of the first."""
    need_service("mosquitto", 1883)
    prefix, out = unique(request), tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: mqtt_linger}}
interfaces:
  input:
    - {{type: mqtt, topics: ["{prefix}/#"], client_id: "{client_id(prefix)}", linger: 0.5}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""
    async with engine_from(tmp_path, text) as engine:
        mqtt_input = engine.runners[0].inputs[0]
        assert isinstance(mqtt_input, MqttInput)
        assert mqtt_input.link._proto is not None
        assert mqtt_input.link._proto.quickack is not None
        batches: list[int] = []
        ingest = mqtt_input.ingest

        async def counted(messages: list[Any]) -> None:
            batches.append(len(messages))
            await ingest(messages)

        mqtt_input.ingest = counted  # type: ignore[method-assign]
        peer = Peer()
        try:
            for n in range(5):
                peer.publish(f"{prefix}/d", {"n": n})
            await eventually(lambda: len(lines(out)) == 5)
        finally:
            peer.close()
    assert batches == [5]


async def test_persistent_session_delivers_what_came_while_stopped(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Messages published while wireway is down arrive after its restart (same client id)."""
    need_service("mosquitto", 1883)
    prefix, out = unique(request), tmp_path / "out.jsonl"
    cid = client_id(prefix)
    text = f"""
pattern: {{name: mqtt_session}}
interfaces:
  input:
    - {{type: mqtt, topics: ["{prefix}/+"], client_id: "{cid}", clean_session: false}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    async with engine_from(tmp_path / "first", text) as engine:
        assert input_state(engine) == "running"
    peer = Peer()
    try:
        mids = [peer.publish(f"{prefix}/t", {"n": n}) for n in range(20)]
        await eventually(lambda: peer.acked >= set(mids), timeout=5)
    finally:
        peer.close()
    async with engine_from(tmp_path / "second", text):
        await eventually(lambda: len(lines(out)) == 20)
    assert sorted(x["n"] for x in lines(out)) == list(range(20))
    assert await leftovers(cid) == []


async def test_topic_fields_and_id_fields(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A missing device_id comes from the topic, a different one is dead-lettered; the same
    payload gets the same messageId (MQTT 5 with a shared subscription)."""
    need_service("mosquitto", 1883)
    prefix, out = unique(request), tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: mqtt_fields}}
interfaces:
  input:
    - type: mqtt
      topics: ["{prefix}/sensors/+/data"]
      client_id: "{client_id(prefix)}"
      clean_session: true
      protocol: "5"
      shared_group: g1
      topic_fields: {{device_id: 4}}
      id_fields: [device_id, ts]
  output:
    - {{type: file, address: "{out}"}}
"""
    async with engine_from(tmp_path, text) as engine:
        peer = Peer()
        try:
            peer.publish(f"{prefix}/sensors/d1/data", {"ts": 1, "t": 20.5})
            peer.publish(f"{prefix}/sensors/d2/data", {"device_id": "d2", "ts": 2})
            peer.publish(f"{prefix}/sensors/d3/data", {"device_id": "x", "ts": 3})
            peer.publish(f"{prefix}/sensors/d1/data", {"ts": 1, "t": 20.5})
            peer.publish(f"{prefix}/sensors/d4/data", {"device_id": "d4"})  # no ts: a ULID
            await eventually(lambda: len(lines(out)) == 4)
            assert engine.sqlite is not None
            await eventually(lambda: engine.sqlite.dlq_depth("mqtt_fields") == 1)
        finally:
            peer.close()
    first, second, third, fourth = lines(out)
    assert first["payload"] == {"ts": 1, "t": 20.5, "device_id": "d1"}
    assert first["messageId"] == stable_id("d1", "1")
    assert third["messageId"] == first["messageId"]
    assert second["payload"] == {"device_id": "d2", "ts": 2}
    assert second["messageId"] == stable_id("d2", "2")
    assert fourth["payload"] == {"device_id": "d4"}
    assert len(fourth["messageId"]) == 26
    assert first["source"] == "mqtt_fields.mqtt"
    (row,) = dead_letters(tmp_path, "mqtt_fields")
    assert row["reason"] == 'topic mismatch: device_id is "x" in the payload but "d3" in the topic'


async def test_broker_unreachable_does_not_stop_the_engine(tmp_path: Path) -> None:
    """With the broker's port closed the engine starts, /health is degraded, http works."""
    need_service("mosquitto", 1883)  # the same machine setup; this test needs no broker
    out = tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: mqtt_down}}
interfaces:
  input:
    - {{type: mqtt, url: "mqtt://127.0.0.1:{free_port()}", topics: [a/b], reconnect_min: 0.1, reconnect_max: 0.5}}
    - {{type: http, address: /ingest/down}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""
    async with engine_from(tmp_path, text) as engine:
        assert input_state(engine) == "connecting"
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as http:
            health = (await http.get("/health")).json()
            assert health["status"] == "degraded"
            assert health["services"]["mqtt"] == "down"
            resp = await http.post("/ingest/down", json={"ok": 1})
            assert resp.status_code == 202
            await eventually(lambda: lines(out) == [{"ok": 1}])
            await asyncio.sleep(0.6)  # a few reconnect attempts later it is still running
            assert (await http.get("/health")).json()["services"]["mqtt"] == "down"


async def test_reconnects_after_the_broker_drops_it(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A client taking over the same client id makes the broker drop wireway's connection;
    wireway reconnects by itself and keeps receiving."""
    need_service("mosquitto", 1883)
    prefix, out = unique(request), tmp_path / "out.jsonl"
    cid = client_id(prefix)
    text = f"""
pattern: {{name: mqtt_drop}}
interfaces:
  input:
    - {{type: mqtt, topics: ["{prefix}/#"], client_id: "{cid}", reconnect_min: 0.2, reconnect_max: 0.5}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""
    async with engine_from(tmp_path, text) as engine:
        intruder = Peer(cid, clean=False)  # session takeover: the broker drops wireway
        await eventually(lambda: engine.health()["services"]["mqtt"] == "down", timeout=5)
        intruder.client.loop_stop()  # no auto-reconnect: wireway takes the id back
        peer = Peer()
        try:
            await eventually(lambda: input_state(engine) == "running", timeout=5)
            assert engine.health()["services"]["mqtt"] == "up"
            peer.publish(f"{prefix}/x", {"after": "reconnect"})
            await eventually(lambda: lines(out) == [{"after": "reconnect"}])
        finally:
            peer.close()
            sock = intruder.client.socket()
            if sock is not None:
                sock.close()
    assert await leftovers(cid) == []


async def test_mqtt_output_publishes_on_templated_topics(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """http in -> mqtt out with `topic: <prefix>/{payload.device_id}`; no device_id -> DLQ."""
    need_service("mosquitto", 1883)
    prefix = unique(request)
    text = f"""
pattern: {{name: mqtt_out}}
interfaces:
  input:
    - {{type: http, address: /ingest/out}}
  output:
    - {{type: mqtt, topic: "{prefix}/{{payload.device_id}}", client_id: "{client_id(prefix, "out")}"}}
"""
    sub = Peer()
    sub.subscribe(f"{prefix}/#")
    try:
        async with engine_from(tmp_path, text) as engine:
            assert engine.health()["services"]["mqtt_out"] == "up"
            body = [{"device_id": "a", "v": 1}, {"device_id": "b", "v": 2}, {"v": 3}]
            async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as http:
                resp = await http.post("/ingest/out", json=body)
                assert resp.status_code == 202
                resp = await http.post("/ingest/out", json={"device_id": "a", "v": 4})
                assert resp.status_code == 202
            await eventually(lambda: len(sub.messages) == 3)
            assert engine.sqlite is not None
            await eventually(lambda: engine.sqlite.dlq_depth("mqtt_out") == 1)
            # the subscriber may see a message before wireway has the broker's PUBACK
            await eventually(lambda: engine.runners[0].routes[0].delivered == 3)
    finally:
        sub.close()
    got = sorted((m.topic, json.loads(m.payload)["v"]) for m in sub.messages)
    assert got == [(f"{prefix}/a", 1), (f"{prefix}/a", 4), (f"{prefix}/b", 2)]
    (row,) = dead_letters(tmp_path, "mqtt_out")
    assert row["reason"] == "topic template: payload.device_id is missing"


@pytest.mark.parametrize(("protocol", "qos"), [("5", 2), ("3.1.1", 2), ("5", 0)])
async def test_mqtt_output_qos_and_protocols(
    tmp_path: Path, request: pytest.FixtureRequest, protocol: str, qos: int
) -> None:
    """QoS 2 completes its PUBREC/PUBREL/PUBCOMP exchange and QoS 0 confirms once written,
    with MQTT 5 and 3.1.1; 300 messages cross the in-flight window (Mosquitto takes 20
    incoming QoS 2 messages at once: an MQTT 5 CONNACK says so, with 3.1.1 it drops the
    others after a PUBREC, so the window is set to 20)."""
    need_service("mosquitto", 1883)
    prefix = unique(request)
    text = f"""
pattern: {{name: mqtt_out_qos}}
interfaces:
  input:
    - {{type: http, address: /ingest/qos}}
  output:
    - {{type: mqtt, topic: "{prefix}/{{payload.n}}", qos: {qos}, protocol: "{protocol}", max_inflight: 20,
       client_id: "{client_id(prefix, "out")}"}}
"""
    sub = Peer()
    sub.subscribe(f"{prefix}/#")
    try:
        async with engine_from(tmp_path, text) as engine:
            async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as http:
                resp = await http.post("/ingest/qos", json=[{"n": n} for n in range(300)])
                assert resp.status_code == 202
            await eventually(lambda: engine.runners[0].routes[0].delivered == 300)
            await eventually(lambda: len(sub.messages) == 300)
            assert engine.runners[0].routes[0].queue.depth == 0
    finally:
        sub.close()
    assert sorted(json.loads(m.payload)["n"] for m in sub.messages) == list(range(300))


async def test_mqtt_output_retries_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    """Not connected -> NotConnected: the message stays in the buffer spending none of its
    retries (a few allowed here, far fewer than the attempts), and the breaker opens."""
    need_service("mosquitto", 1883)
    text = f"""
pattern: {{name: mqtt_out_down}}
interfaces:
  input:
    - {{type: http, address: /ingest/outdown}}
  output:
    - {{type: mqtt, url: "mqtt://127.0.0.1:{free_port()}", topic: t, reconnect_min: 0.1, reconnect_max: 0.5}}
settings: {{retries: 1, backoff_base: 0.01, backoff_max: 0.02, breaker_threshold: 3, breaker_timeout: 0.05, timeout: 0.5}}
"""
    async with engine_from(tmp_path, text) as engine:
        assert engine.health()["services"]["mqtt_out"] == "down"
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as http:
            assert (await http.post("/ingest/outdown", json={"x": 1})).status_code == 202
        route = engine.runners[0].routes[0]
        await eventually(lambda: route.breaker.state != "closed", timeout=5)
        await eventually(lambda: route.outage >= 5, timeout=10)  # more attempts than retries
        assert route.last_error == "NotConnected: not connected to the MQTT broker"
        assert route.queue.depth == 1
        assert route.delivered == 0
        assert engine.runners[0].store.dlq_depth() == 0


def make_certs(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(name: str, key: Any, issuer: x509.Name, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wireway test CA")])
    ca = cert("wireway test CA", ca_key, ca_name, ca_key, True)
    server = cert("127.0.0.1", key, ca_name, ca_key, False)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(server.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@contextlib.contextmanager
def tls_broker(folder: Path) -> Iterator[int]:
    """A second Mosquitto of this test alone: TLS and a password, on a free port."""
    if not (shutil.which("mosquitto") and shutil.which("mosquitto_passwd")):
        need_service("mosquitto (binary for a TLS broker)", 0)
    make_certs(folder)
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(folder / "passwd"), "dev", "s3cret"],
        check=True,
        capture_output=True,
        timeout=10,
    )
    port = free_port()
    (folder / "mosquitto.conf").write_text(
        f"user root\npersistence false\nlog_dest none\nlistener {port} 127.0.0.1\n"
        f"cafile {folder}/ca.pem\ncertfile {folder}/server.pem\nkeyfile {folder}/server.key\n"
        f"allow_anonymous false\npassword_file {folder}/passwd\n"
    )
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(folder / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise AssertionError(f"TLS mosquitto did not start: {err}") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


async def test_mqtts_with_credentials_in_and_out(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """mqtts:// with user:pass in the URL and a CA file, both directions (mqtt in -> mqtt out);
    a wrong password leaves the input down without stopping the engine."""
    need_service("mosquitto", 1883)
    prefix = unique(request)
    with tls_broker(tmp_path) as port:
        url = f"mqtts://dev:s3cret@127.0.0.1:{port}"
        text = f"""
pattern: {{name: mqtt_tls}}
interfaces:
  input:
    - {{type: mqtt, url: "{url}", tls_ca: ca.pem, topics: ["{prefix}/in/+"], clean_session: true}}
  output:
    - {{type: mqtt, url: "{url}", tls_ca: ca.pem, topic: "{prefix}/out/{{payload.k}}"}}
"""
        peer = Peer(port=port, tls_ca=tmp_path / "ca.pem", auth=("dev", "s3cret"))
        peer.subscribe(f"{prefix}/out/#")
        try:
            async with engine_from(tmp_path, text) as engine:
                services = engine.health()["services"]
                assert services["mqtt"] == "up"
                assert services["mqtt_out"] == "up"
                for k in ("a", "b"):
                    peer.publish(f"{prefix}/in/x", {"k": k})
                await eventually(lambda: len(peer.messages) == 2)
        finally:
            peer.close()
        assert sorted(m.topic for m in peer.messages) == [f"{prefix}/out/a", f"{prefix}/out/b"]

        bad = text.replace("dev:s3cret@", "dev:wrong@").replace("mqtt_tls", "mqtt_tls_bad")
        (tmp_path / "bad").mkdir()
        async with engine_from(tmp_path / "bad", bad.replace("ca.pem", str(tmp_path / "ca.pem"))) as engine:
            assert input_state(engine) == "connecting"
            assert engine.health()["services"]["mqtt"] == "down"


async def test_shared_subscription_splits_the_work(tmp_path: Path) -> None:
    """Two engines in one shared group: every message reaches exactly one of them."""
    need_service("mosquitto", 1883)
    topic = f"shared-{uuid.uuid4().hex[:8]}"
    outs = [tmp_path / f"a{i}" / "out.jsonl" for i in range(2)]

    def text(i: int) -> str:
        return f"""
pattern: {{name: shared{i}}}
interfaces:
  input:
    - {{type: mqtt, topics: ["{topic}/#"], shared_group: g, client_id: "w-{topic}-{i}"}}
  output:
    - {{type: file, address: "{outs[i]}", payload_only: true}}
"""

    for i in range(2):
        (tmp_path / f"a{i}").mkdir()
    async with engine_from(tmp_path / "a0", text(0)) as e0, engine_from(tmp_path / "a1", text(1)) as e1:
        for engine in (e0, e1):
            await eventually(lambda engine=engine: engine.health()["services"].get("mqtt") == "up")
        pub = paho.Client(CallbackAPIVersion.VERSION2)
        pub.connect("127.0.0.1", 1883)
        pub.loop_start()
        for n in range(100):
            pub.publish(f"{topic}/x", json.dumps({"n": n}), qos=1).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()

        def seen() -> list[int]:
            return [json.loads(x)["n"] for p in outs if p.exists() for x in p.read_text().splitlines()]

        await eventually(lambda: len(seen()) >= 100, timeout=15)
    got = seen()
    assert sorted(got) == list(range(100))
    assert all(p.exists() and p.read_text() for p in outs), "both members should get some"


async def test_qos2_is_stored_then_completed(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """QoS 2 in: PUBREC after the outbox commit, PUBCOMP on PUBREL; the session is empty after."""
    need_service("mosquitto", 1883)
    prefix, out = unique(request), tmp_path / "out.jsonl"
    cid = client_id(prefix)
    text = f"""
pattern: {{name: mqtt_qos2}}
interfaces:
  input:
    - {{type: mqtt, topics: ["{prefix}/+"], client_id: "{cid}", qos: 2}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""
    async with engine_from(tmp_path, text):
        peer = Peer()
        try:
            for n in range(5):
                peer.publish(f"{prefix}/t", {"n": n}, qos=2)
            await eventually(lambda: len(lines(out)) == 5)
        finally:
            peer.close()
    assert sorted(x["n"] for x in lines(out)) == list(range(5))
    assert await leftovers(cid) == []


@pytest.mark.slow  # waits out keepalive timeouts: 13 s
async def test_keepalive_pings_and_a_silent_broker_is_left(tmp_path: Path) -> None:
    """With keepalive 5 s an idle connection stays up (PINGREQ every 2.5 s); a broker
    that stops answering (SIGSTOP) is given up after 1.5 keep-alives, and the input
    reconnects once it answers again."""
    import signal

    from wireway.bench.sensor import start_broker

    need_service("mosquitto", 1883)
    (tmp_path / "broker").mkdir()
    broker, port = start_broker(tmp_path / "broker")
    text = f"""
pattern: {{name: mqtt_ping}}
interfaces:
  input:
    - {{type: mqtt, url: "mqtt://127.0.0.1:{port}", topics: [ping/+], keepalive: 5,
       reconnect_min: 0.2, reconnect_max: 0.5, connect_timeout: 1}}
  output:
    - {{type: stdout}}
"""
    try:
        async with engine_from(tmp_path, text) as engine:
            assert engine.health()["services"]["mqtt"] == "up"
            await asyncio.sleep(6.5)  # longer than the keep-alive: pings kept it open
            assert engine.health()["services"]["mqtt"] == "up"
            broker.send_signal(signal.SIGSTOP)
            try:
                await eventually(lambda: engine.health()["services"]["mqtt"] == "down", timeout=12)
            finally:
                broker.send_signal(signal.SIGCONT)
            await eventually(lambda: engine.health()["services"]["mqtt"] == "up", timeout=10)
    finally:
        broker.terminate()
        broker.wait(10)


@pytest.mark.parametrize(("index", "ok"), [(3, True), (-2, True), (-4, True), (4, False), (-5, False)])
def test_topic_fields_levels_from_either_end(index: int, ok: bool) -> None:
    """`sensors/+/x/data` has levels 0..3, or -4..-1 from the end; others are refused."""
    import msgspec

    from wireway.connectors.mqtt.config import MqttInputConfig

    value = {"topics": ["sensors/+/x/data"], "topic_fields": {"device_id": index}}
    if ok:
        assert msgspec.convert(value, MqttInputConfig).topic_fields == {"device_id": index}
    else:
        with pytest.raises(
            msgspec.ValidationError, match=r"beyond the topic .* at `\$.topic_fields.device_id`"
        ):
            msgspec.convert(value, MqttInputConfig)
