"""A broker that sends a malformed packet: the mqtt input closes that connection, counts
it, logs it and reconnects, and the event loop never sees an exception.

The "broker" is a real asyncio TCP server of this test that speaks just enough MQTT:
CONNACK, SUBACK, then one scripted packet per connection.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from conftest import free_port
from support import engine_from, eventually
from wireway.connectors.mqtt import wire
from wireway.observability.metrics import REGISTRY


class ScriptedBroker:
    """Answers CONNECT and SUBSCRIBE, then sends `script[n]` on the n-th connection."""

    def __init__(self, script: list[bytes]) -> None:
        self.script = script
        self.connections = 0
        self.closed_by_client = 0  # connections the client ended after our packet
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
        return first >> 4, await reader.readexactly(length)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        try:
            kind, _ = await self.packet(reader)
            assert kind == 1  # CONNECT
            writer.write(b"\x20\x02\x00\x00")
            kind, body = await self.packet(reader)
            assert kind == 8  # SUBSCRIBE
            writer.write(b"\x90\x03" + body[:2] + b"\x01")
            writer.write(self.script[min(index, len(self.script) - 1)])
            await writer.drain()
            for _ in range(100):  # PUBACKs, PINGREQs; bounded, ends at the client's close
                kind, _ = await self.packet(reader)
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


async def test_an_oversized_packet_is_refused_before_it_arrives(tmp_path: Path) -> None:
    """A PUBLISH announcing 2 MiB against `max_packet_size: 4096`: closed at its header."""
    header = b"\x30" + wire.varint(2 << 20) + b"\x00\x01t"
    broker = ScriptedBroker([header, publish(b"t/ok", {"ok": True})])
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
        async with engine_from(tmp_path, text):
            await eventually(lambda: out.exists() and out.read_text().strip() != "")
    finally:
        await broker.stop()
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{"ok": True}]
    assert malformed_count(label) == before + 1
