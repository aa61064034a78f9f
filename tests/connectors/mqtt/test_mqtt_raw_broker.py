"""The mqtt connectors against a broker that misbehaves on purpose: a malformed packet
closes the connection, is counted and logged, and the connector reconnects; an oversized
PUBLISH is skipped to the DLQ; the event loop never sees an exception. An output whose connection is
lost before the PUBACKs publishes again and loses nothing.

The "broker" is a real asyncio TCP server of this test that speaks just enough MQTT.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from structlog.testing import capture_logs

from conftest import free_port
from support import base_url, engine_from, eventually
from wireway.connectors.mqtt import wire
from wireway.observability.metrics import REGISTRY
from wireway.runtime.dlq import DlqAdmin


class ScriptedBroker:
    """A broker of the test on a free port. On its n-th connection (the last entry
    repeats) it answers CONNECT, sends `script[n]` after the SUBACK, and acknowledges
    PUBLISH packets if `acks[n]`, else closes the connection at the first one."""

    def __init__(self, script: list[bytes], acks: list[bool] | None = None) -> None:
        self.script = script
        self.acks = acks or [True]
        self.connections = 0
        self.closed_by_client = 0  # connections the client ended
        self.published: list[bytes] = []  # payloads of the PUBLISH packets received
        self.acked: list[int] = []  # packet ids of the PUBACKs received
        self.server: asyncio.Server | None = None
        self.port = free_port()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @staticmethod
    async def packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        first = (await reader.readexactly(1))[0]
        length, shift = 0, 0
        for _ in range(4):
            byte = (await reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        return first, await reader.readexactly(length)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        script = self.script[min(index, len(self.script) - 1)]
        ack = self.acks[min(index, len(self.acks) - 1)]
        try:
            first, _ = await self.packet(reader)
            assert first >> 4 == 1  # CONNECT
            writer.write(b"\x20\x02\x00\x00")
            for _ in range(10_000):  # bounded; ends when the client closes
                first, body = await self.packet(reader)
                if first >> 4 == 8:  # SUBSCRIBE
                    writer.write(b"\x90\x03" + body[:2] + b"\x01" + script)
                elif first >> 4 == 4:  # PUBACK of a message the script sent
                    self.acked.append(int.from_bytes(body[:2], "big"))
                elif first >> 4 == 3:  # PUBLISH, QoS 1 here
                    at = 2 + int.from_bytes(body[:2], "big")
                    if not ack:
                        return
                    self.published.append(body[at + 2 :])
                    writer.write(b"\x40\x02" + body[at : at + 2])
                await writer.drain()
        except asyncio.IncompleteReadError:
            self.closed_by_client += 1
        finally:
            writer.close()


def malformed_count(label: str) -> float:
    value = REGISTRY.get_sample_value("wireway_mqtt_malformed_packets_total", {"connector": label})
    return value or 0.0


def publish(topic: bytes, payload: Any) -> bytes:
    return wire.publish(topic, json.dumps(payload).encode(), 1, 1, retain=False, v5=False)


async def test_a_malformed_packet_closes_counts_logs_and_reconnects(tmp_path: Path) -> None:
    """A PUBLISH of 2 bytes in all (no room for its topic length) on the first connection;
    a valid one after the reconnect arrives in the output."""
    broker = ScriptedBroker([b"\x30\x00", publish(b"t/after", {"after": "reconnect"})])
    await broker.start()
    out = tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: mqtt_malformed}}
interfaces:
  input:
    - {{type: mqtt, url: "mqtt://127.0.0.1:{broker.port}", topics: ["t/#"], reconnect_min: 0.05,
       reconnect_max: 0.1, clean_session: true}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    label = "mqtt_malformed.mqtt"
    before = malformed_count(label)
    try:
        with capture_logs() as logs:
            async with engine_from(tmp_path, text):
                await eventually(lambda: out.exists() and out.read_text().strip() != "")
                assert broker.connections == 2
                assert broker.closed_by_client >= 1
    finally:
        loop.set_exception_handler(None)
        await broker.stop()
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{"after": "reconnect"}]
    assert malformed_count(label) == before + 1
    (line,) = [x for x in logs if x["event"] == "mqtt malformed packet, closing the connection"]
    assert line["connector"] == label
    assert line["error"] == "PUBLISH shorter than its topic"
    assert errors == []


async def test_an_oversized_publish_is_skipped_to_the_dlq_and_acknowledged(tmp_path: Path) -> None:
    """A PUBLISH of 64 KiB against `max_packet_size: 4096`, arriving in pieces: its bytes go
    by without being kept, its message goes to the DLQ with the reason and is acknowledged
    (the broker would send it again forever otherwise), and the next one on the same
    connection arrives."""
    big = wire.publish(b"t/big", b"x" * (64 << 10), 7, 1, retain=False, v5=False)
    broker = ScriptedBroker([big + publish(b"t/ok", {"ok": True})])
    await broker.start()
    out = tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: mqtt_oversized}}
interfaces:
  input:
    - {{type: mqtt, url: "mqtt://127.0.0.1:{broker.port}", topics: ["t/#"], reconnect_min: 0.05,
       reconnect_max: 0.1, clean_session: true, max_packet_size: 4096}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""
    label = "mqtt_oversized.mqtt"
    before = malformed_count(label)
    try:
        async with engine_from(tmp_path, text) as engine:
            await eventually(lambda: out.exists() and out.read_text().strip() != "")
            await eventually(lambda: len(broker.acked) == 2)
            dead = engine.runners[0].store.dlq_depth()
    finally:
        await broker.stop()
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{"ok": True}]
    assert malformed_count(label) == before + 1
    assert broker.connections == 1
    assert sorted(broker.acked) == [1, 7]
    assert dead == 1
    with DlqAdmin(tmp_path / "data" / "buffer.db") as admin:
        (row,) = admin.list("mqtt_oversized")
    assert "a message of 65,549 bytes on topic t/big is over max_packet_size (4,096)" in json.dumps(row)


async def test_output_publishes_again_after_a_connection_lost_before_the_acks(tmp_path: Path) -> None:
    """The first connection is closed by the broker at the first PUBLISH, before any
    PUBACK: the batch is retried on the next connection and every message arrives once."""
    broker = ScriptedBroker([b""], acks=[False, True])
    await broker.start()
    text = f"""
pattern: {{name: mqtt_out_lost}}
interfaces:
  input:
    - {{type: http, address: /ingest/lost}}
  output:
    - {{type: mqtt, url: "mqtt://127.0.0.1:{broker.port}", topic: "t/{{payload.n}}", reconnect_min: 0.05,
       reconnect_max: 0.1}}
settings: {{retries: 100, backoff_base: 0.05, backoff_max: 0.1}}
"""
    try:
        async with engine_from(tmp_path, text) as engine:
            async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as http:
                resp = await http.post("/ingest/lost", json=[{"n": n} for n in range(50)])
                assert resp.status_code == 202
            route = engine.runners[0].routes[0]
            await eventually(lambda: route.delivered == 50)
            assert broker.connections >= 2
    finally:
        await broker.stop()
    assert sorted(json.loads(p)["n"] for p in broker.published) == list(range(50))
