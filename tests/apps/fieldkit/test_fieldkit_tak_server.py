"""A TAK server's streaming port (tcp://) configured in the pattern gets the events."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path

from kit_support import fieldkit

from support import eventually
from wireway.apps.fieldkit.simulate import Simulator


async def test_events_stream_to_a_tak_server(tmp_path: Path) -> None:
    received: list[ET.Element] = []

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while chunk := await reader.read(65536):
            buffer += chunk
            while b"</event>" in buffer:
                event, _, buffer = buffer.partition(b"</event>")
                received.append(ET.fromstring(event + b"</event>"))
        writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sim = Simulator(devices=3, layout="1.6", seed=1)
    env = {"FIELDKIT_TAK_ENABLED": "true", "FIELDKIT_TAK_URL": f"tcp://127.0.0.1:{port}"}
    try:
        async with fieldkit(tmp_path, **env) as kit:
            path = kit.wigle / "Kismet-20261204-15-00-00-1.wiglecsv"
            path.write_text(sim.header() + "".join(sim.line(d) for d in sim.devices), encoding="ascii")
            await eventually(lambda: len(received) == 3)
            await eventually(lambda: kit.counts()["events_sent"] >= 6)  # and the multicast group's three
    finally:
        server.close()
        await server.wait_closed()
    assert {e.get("uid") for e in received} == {f"wifi-{d.mac}" for d in sim.devices}
