"""The load the sensor bench offers: readings published over MQTT at QoS 1, and HTTP POSTs.

Both are cheap on purpose: the load generator shares the machine with what it measures.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from rich.progress import Progress

from wireway.connectors.mqtt.config import MqttConnection
from wireway.connectors.mqtt.outbound import Batch
from wireway.connectors.mqtt.outbound import Publisher as Connection
from wireway.connectors.mqtt.session import Session

ADMIN = "bench-admin-key"


def reading_json(device: int, t: float, seq: int) -> bytes:
    """The JSON of one bench reading of device `device` published at `t`."""
    return msgspec.json.encode(
        {
            "device_id": f"bench-{device:03d}",
            "timestamp": datetime.fromtimestamp(t, UTC),  # RFC 3339, far cheaper than isoformat()
            "sensors": {
                "ld2410": {"presence": seq % 3 == 0, "distance": seq % 600, "energy": seq % 100},
                "pir": {"motion_detected": seq % 5 == 0},
                "mq134": {"gas_concentration": 100 + seq % 50, "unit": "ppm"},
            },
        }
    )


class Publisher:
    """Publishes bench readings at QoS 1 through wireway's MQTT session layer, keeping
    `window` of them unacknowledged; packets go out without waiting for each PUBACK."""

    def __init__(self, port: int = 1883, window: int = 1000) -> None:
        self.port = port
        self.window = window

    async def _run(
        self, prefix: str, n: int, devices: int, rate: float | None, progress: Progress, task: Any
    ) -> int:
        options = MqttConnection(url=f"mqtt://127.0.0.1:{self.port}", keepalive=60)
        session = Session(client_id=f"bench-{uuid.uuid4().hex[:8]}")
        link = Connection(options, session, Path.cwd(), "bench", "bench", self.window)
        link.start()
        try:
            async with asyncio.timeout(options.connect_timeout + 1):
                await link.first_attempt.wait()
            if not link.connected:
                raise RuntimeError(f"cannot publish to the broker at {link.broker.address}")
            sent = Batch()
            start = time.monotonic()
            topics = [f"{prefix}/sensors/bench-{d:03d}/data".encode() for d in range(devices)]
            for i in range(n):
                if rate is not None:
                    delay = start + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if not link.has_room():
                    await link.wait_room()
                d = i % devices
                link.publish(topics[d], reading_json(d, time.time(), i), 1, False, sent, i)
                if i % 200 == 0:
                    progress.update(task, completed=i)
            sent.seal()
            await asyncio.wait_for(sent.done, 600)
        finally:
            await link.stop()
        progress.update(task, completed=n)
        return sent.acknowledged

    def run(
        self, prefix: str, n: int, devices: int, rate: float | None, progress: Progress, task: Any
    ) -> int:
        """Publish n readings (paced when `rate` is set); returns how many the broker acked."""
        return asyncio.run(self._run(prefix, n, devices, rate, progress, task))


async def http_load(url: str, n: int, batch: int, concurrency: int) -> tuple[float, int]:
    """POST n readings (singly or in batches of `batch`) over `concurrency` keep-alive
    connections, sending again after a 503; returns (accepted readings/s, accepted).

    A small raw HTTP/1.1 client: a Python HTTP library would be the bottleneck here.
    """
    from urllib.parse import urlparse

    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    path = "/api/v1/sensor-data" if batch == 1 else "/api/v1/sensor-data/batch"
    t_base = time.time() - 86400 * 30 - n * 0.001
    bodies: list[bytes] = []
    for i in range(0, n, batch):
        if batch == 1:
            bodies.append(reading_json(i % 100, t_base + i * 0.001, i))
        else:
            items = [reading_json(j % 100, t_base + j * 0.001, j) for j in range(i, min(i + batch, n))]
            bodies.append(b"[" + b",".join(items) + b"]")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {ADMIN}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    next_body = iter(range(len(bodies)))
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for k in next_body:
                data = bodies[k]
                for _ in range(2000):  # like a device: a 503 (buffer full) is sent again shortly
                    writer.write(head + str(len(data)).encode() + b"\r\n\r\n" + data)
                    status = int((await reader.readline()).split()[1])
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
                    if status != 503:
                        break
                    await asyncio.sleep(0.05)
                if status == 202:
                    accepted += batch if batch == 1 else min(batch, n - k * batch)
        finally:
            writer.close()

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted / (time.monotonic() - start), accepted
