"""Realistic ESP32 readings: radar targets that move, PIR bursts, gas with spikes."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from wireway.connectors.mqtt.config import MqttConnection
from wireway.connectors.mqtt.outbound import Batch, Publisher
from wireway.connectors.mqtt.session import Session


@dataclass
class Device:
    """One simulated device with its own slowly varying state."""

    device_id: str
    rng: random.Random
    distance: float = 300.0
    velocity: float = 0.0
    present: bool = False
    pir_until: float = 0.0
    gas: float = 120.0
    seq: int = 0

    def reading(self, now: float, anomaly: bool) -> dict[str, Any]:
        rng = self.rng
        self.seq += 1
        if rng.random() < 0.05:
            self.present = not self.present
        if self.present:
            self.velocity = max(-40.0, min(40.0, self.velocity + rng.gauss(0, 8)))
            self.distance = max(30.0, min(580.0, self.distance + self.velocity))
        if rng.random() < 0.03:
            self.pir_until = now + rng.uniform(2, 8)  # a burst of motion
        self.gas = max(20.0, self.gas + rng.gauss(0, 5) + (120 - self.gas) * 0.05)
        gas = self.gas * rng.uniform(5, 9) if anomaly else self.gas
        moving = self.present and abs(self.velocity) > 5
        energy = int(min(100, max(0, 80 - self.distance / 8 + rng.gauss(0, 5)))) if self.present else 0
        ms = round(now * 1000)  # `now` is whole milliseconds (see Simulator.next)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
        return {
            "device_id": self.device_id,
            "timestamp": ts,
            "sensors": {
                "ld2410": {
                    "presence": self.present,
                    "distance": round(self.distance) if self.present else 0,
                    "energy": energy,
                    "moving_distance": round(self.distance) if moving else 0,
                    "moving_energy": energy if moving else 0,
                    "still_distance": round(self.distance) if self.present and not moving else 0,
                    "still_energy": energy if self.present and not moving else 0,
                    "detection_distance": round(self.distance) if self.present else 0,
                    "has_moving_target": moving,
                    "has_still_target": self.present and not moving,
                },
                "pir": {"motion_detected": now < self.pir_until},
                "mq134": {
                    "gas_concentration": round(gas, 1),
                    "unit": "ppm",
                    "raw": int(min(4095, gas * 4)),
                },
            },
        }


@dataclass
class Simulator:
    """Makes readings for `devices` devices; a fraction are anomalies or malformed."""

    devices: int = 20
    anomalies: float = 0.02
    malformed: float = 0.01
    seed: int = 7
    prefix: str = "sim"
    fleet: list[Device] = field(default_factory=list)
    made: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.fleet = [
            Device(f"{self.prefix}-{i:04d}", random.Random(self.seed * 1000 + i)) for i in range(self.devices)
        ]
        self.last_ts: dict[str, int] = {}  # ms

    def next(self, index: int) -> tuple[str, bytes]:
        """(device_id, body) for the index-th reading (round robin over the fleet)."""
        device = self.fleet[index % len(self.fleet)]
        # whole milliseconds, one apart at least: a float `last + 0.001` can print as the
        # same millisecond, and the same device_id and timestamp is a duplicate reading
        ms = max(round(time.time() * 1000), self.last_ts.get(device.device_id, 0) + 1)
        self.last_ts[device.device_id] = ms
        now = ms / 1000
        roll = self.rng.random()
        if roll < self.malformed:
            self.made["malformed"] += 1
            bad = device.reading(now, False)
            bad["sensors"]["ld2410"]["distance"] = -5 if self.rng.random() < 0.5 else "far"
            if self.rng.random() < 0.3:
                return device.device_id, b'{"device_id": "' + device.device_id.encode() + b'", '
            return device.device_id, msgspec.json.encode(bad)
        anomaly = roll < self.malformed + self.anomalies
        self.made["anomaly" if anomaly else "normal"] += 1
        return device.device_id, msgspec.json.encode(device.reading(now, anomaly))


async def post_http(
    sim: Simulator,
    *,
    url: str,
    rate: float,
    duration: float,
    api_key: str | None,
    total: int | None = None,
    progress: Callable[[int], None] | None = None,
    concurrency: int = 16,
) -> Counter[str]:
    """POST readings at `rate`/s for `duration` s (or `total` readings); counts status codes."""
    results: Counter[str] = Counter()
    headers = {"content-type": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    n = total if total is not None else max(1, int(rate * duration))
    start = time.monotonic()
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10, trust_env=False) as c:

        async def send(i: int) -> None:
            _, body = sim.next(i)
            async with sem:
                try:
                    r = await c.post("/api/v1/sensor-data", content=body)
                    results[str(r.status_code)] += 1
                except httpx.HTTPError as exc:
                    results[type(exc).__name__] += 1
            if progress:
                progress(1)

        tasks: set[asyncio.Task[None]] = set()
        try:
            for i in range(n):
                due = start + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() - start > duration + 5:
                    break
                task = asyncio.create_task(send(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                while len(tasks) > concurrency * 4:  # noqa: ASYNC110  (a bounded in-flight window)
                    await asyncio.sleep(0.001)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return results


def sine_rate(base: float, t: float) -> float:
    """A gently varying rate, for demos."""
    return base * (1 + 0.2 * math.sin(t / 30))


def publish_mqtt(
    sim: Simulator,
    *,
    url: str,
    rate: float,
    duration: float,
    prefix: str = "neurobuild",
    total: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Publish readings at QoS 1 to `<prefix>/sensors/<device>/data`; counts PUBACKs."""
    return asyncio.run(
        _publish_mqtt(
            sim, url=url, rate=rate, duration=duration, prefix=prefix, total=total, progress=progress
        )
    )


async def _publish_mqtt(
    sim: Simulator,
    *,
    url: str,
    rate: float,
    duration: float,
    prefix: str,
    total: int | None,
    progress: Callable[[int], None] | None,
) -> Counter[str]:
    options = MqttConnection(url=url)
    session = Session(client_id=f"wireway-sim-{os.getpid()}")
    link = Publisher(options, session, Path.cwd(), "simulator", "simulator", max_inflight=1000)
    link.start()
    try:
        async with asyncio.timeout(options.connect_timeout + 1):
            await link.first_attempt.wait()
        if not link.connected:
            raise ConnectionError(f"cannot connect to the MQTT broker at {link.broker.address}")
        sent = Batch()
        n = total if total is not None else max(1, int(rate * duration))
        start = time.monotonic()
        published = 0
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() - start > duration + 5:
                break
            if not link.has_room():
                await link.wait_room()
            device_id, body = sim.next(i)
            link.publish(f"{prefix}/sensors/{device_id}/data".encode(), body, 1, False, sent, i)
            published += 1
            if progress:
                progress(1)
        sent.seal()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(asyncio.shield(sent.done), 30)
    finally:
        await link.stop()
    results = Counter({"acked": sent.acknowledged, "unacked": published - sent.acknowledged})
    return +results  # without the zero counts
