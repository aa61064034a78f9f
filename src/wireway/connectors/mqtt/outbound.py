"""Publishing over the session layer: packet ids, an in-flight window, and which
publishes the broker acknowledged (PUBACK for QoS 1, PUBREC/PUBREL/PUBCOMP for QoS 2).

Used by the mqtt output, `wireway simulate --via mqtt` and `wireway bench sensor`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from wireway.connectors.mqtt import wire
from wireway.connectors.mqtt.config import MqttConnection
from wireway.connectors.mqtt.session import Connection, Session


class Batch:
    """Publishes one caller waits for: `done` resolves once every one was acknowledged
    (after `seal`), or fails when the connection is lost first."""

    def __init__(self) -> None:
        self.waiting = 0  # published with QoS 1/2, not yet acknowledged
        self.acknowledged = 0
        self.refused: dict[int, int] = {}  # index -> the broker's reason code (MQTT 5)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sealed = False

    def settle(self, index: int, code: int) -> None:
        if code >= 0x80:
            self.refused[index] = code
        else:
            self.acknowledged += 1
        self.waiting -= 1
        if not self.waiting and self.sealed and not self.done.done():
            self.done.set_result(None)

    def seal(self) -> None:
        """No more publishes will be added: `done` resolves when the last one is acknowledged."""
        self.sealed = True
        if not self.waiting and not self.done.done():
            self.done.set_result(None)

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)


class Publisher(Connection):
    """A publishing connection that reconnects by itself.

    `publish` writes one PUBLISH at once when the window has room (`has_room`, else
    `await wait_room()`); a publish that the connection loss leaves unacknowledged
    fails its batch with ConnectionError (the caller publishes it again).
    """

    def __init__(
        self,
        config: MqttConnection,
        session: Session,
        base_dir: Path,
        label: str,
        kind: str,
        max_inflight: int,
    ) -> None:
        super().__init__(config, session, base_dir, label, kind)
        self.max_inflight = max_inflight
        self.window = max_inflight  # lowered to the broker's Receive Maximum (MQTT 5)
        self.broker_max_packet = 0  # MQTT 5: the largest packet the broker accepts, 0 = any
        self.inflight: dict[int, tuple[Batch, int]] = {}  # packet id -> (batch, index)
        self.last_id = 0
        self.room = asyncio.Event()

    async def opened(self, session_present: bool, properties: dict[int, int]) -> None:
        self.window = min(self.max_inflight, properties.get(wire.RECEIVE_MAXIMUM, 65535) or 65535)
        self.broker_max_packet = properties.get(wire.MAXIMUM_PACKET_SIZE, 0)
        self.room.set()

    def has_room(self) -> bool:
        return len(self.inflight) < self.window

    async def wait_room(self) -> None:
        """Until the window has room; raises ConnectionError when not connected."""
        while len(self.inflight) >= self.window:
            if not self.connected:
                raise ConnectionError("not connected")
            self.room.clear()
            await self.room.wait()

    def publish(self, topic: bytes, payload: bytes, qos: int, retain: bool, batch: Batch, index: int) -> None:
        """Send one PUBLISH (the window must have room for QoS 1/2); raises ConnectionError
        when not connected. A packet over the broker's maximum size is refused in `batch`."""
        transport = self.transport()
        if transport is None or not self.connected:
            raise ConnectionError("not connected")
        mid = 0
        if qos:
            mid = self.last_id % 65535 + 1
            while mid in self.inflight:
                mid = mid % 65535 + 1
            self.last_id = mid
        packet = wire.publish(topic, payload, mid, qos, retain=retain, v5=self.v5)
        if self.broker_max_packet and len(packet) > self.broker_max_packet:
            batch.refused[index] = 0x95  # packet too large
            return
        if qos:
            self.inflight[mid] = (batch, index)
            batch.waiting += 1
        transport.write(packet)

    def forget(self, batch: Batch) -> None:
        """Stop waiting for the publishes of `batch` (its caller gave up on them)."""
        for mid in [m for m, (b, _) in self.inflight.items() if b is batch]:
            del self.inflight[mid]
        self.room.set()

    def acknowledged(self, acks: list[wire.Ack]) -> None:
        inflight = self.inflight
        for kind, mid, code in acks:
            if kind == wire.PUBREC and code < 0x80:
                transport = self.transport()
                if transport is not None and mid in inflight:
                    transport.write(wire.pubrel(mid))  # PUBCOMP settles it
                continue
            ticket = inflight.pop(mid, None)
            if ticket is not None:
                ticket[0].settle(ticket[1], code)
        if len(inflight) < self.window:
            self.room.set()

    def lost(self, reason: str) -> None:
        inflight, self.inflight = self.inflight, {}
        error = ConnectionError(f"disconnected before the broker acknowledged: {reason}")
        for batch, _ in inflight.values():
            batch.fail(error)
        self.room.set()
