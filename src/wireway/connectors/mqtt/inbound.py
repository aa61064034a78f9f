"""The mqtt input's side of a broker connection: subscribe, and acknowledge what is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wireway.connectors.mqtt import wire
from wireway.connectors.mqtt.config import MqttConnection
from wireway.connectors.mqtt.session import Connection, Session

SUBSCRIBE_ID = 1


class Subscriber(Connection):
    """A subscribing connection that reconnects by itself (persistent session or not).

    Subclasses override `received` (the PUBLISH packets of one socket read), `ready`
    (subscribed, with a reason code per topic, then per `watch` topic) and `lost`.
    """

    def __init__(
        self,
        config: MqttConnection,
        session: Session,
        base_dir: Path,
        label: str,
        topics: list[str],
        qos: int,
        watch: tuple[str, ...] = (),
    ) -> None:
        super().__init__(config, session, base_dir, label, "input")
        self.announce_max_packet = False  # skipped to the DLQ instead (see Connection)
        self.quickack = True  # each message comes at once: a batch waits for its `linger` only
        self.topics = topics
        self.qos = qos
        self.watch = watch  # subscribed at QoS 0 too; a refusal there is no error
        self._suback: asyncio.Future[list[int]] | None = None
        # QoS 2 messages stored and PUBREC'd whose PUBREL has not come yet: a stop waits
        # for them briefly so that it leaves the session empty
        self.unreleased: set[int] = set()

    def ready(self, session_present: bool, codes: list[int]) -> None: ...

    async def opened(self, session_present: bool, properties: dict[int, int]) -> None:
        transport = self.transport()
        if transport is None:
            raise ConnectionError("connection closed before SUBSCRIBE")
        self._suback = self._loop.create_future()
        transport.write(wire.subscribe(SUBSCRIBE_ID, self.topics, self.qos, v5=self.v5, watch=self.watch))
        codes = await self._suback
        self.ready(session_present, codes)

    def other(self, kind: int, body: bytes) -> None:
        if kind == wire.SUBACK:
            mid, codes = wire.suback(body, self.v5)
            if mid == SUBSCRIBE_ID and self._suback is not None and not self._suback.done():
                self._suback.set_result(codes)

    def ack(self, items: list[tuple[int, int]]) -> None:
        """PUBACK / PUBREC for (packet id, qos) pairs received on the current connection."""
        transport = self.transport()
        if transport is not None and self.connected and items:
            transport.write(wire.acks(items))
            self.unreleased.update(mid for mid, qos in items if qos == 2)

    def released(self, packet_id: int) -> None:
        self.unreleased.discard(packet_id)

    async def settle(self, seconds: float) -> None:
        """Wait (at most `seconds`) for the PUBRELs of what was PUBREC'd."""
        deadline = self._loop.time() + seconds
        while self.unreleased and self.connected and self._loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    def _gone(self, reason: str) -> None:
        self.unreleased.clear()  # the broker sends its PUBRELs again on the next connection
        if self._suback is not None and not self._suback.done():
            self._suback.set_exception(ConnectionError(f"connection closed: {reason}"))
        super()._gone(reason)
