"""The mqtt input's broker connection: an asyncio Protocol that speaks just enough MQTT.

Why not paho here (the output still uses it): a subscriber at tens of thousands of
QoS 1 messages a second spent a quarter of wireway's CPU inside paho, which reads
each packet with several `recv` calls and builds a message object, a message info
with its own lock and a topic-matcher walk per packet, and sends each PUBACK with
its own `send`. Here a socket read is parsed in one pass (`wire.parse`) and the
acknowledgements of a batch leave in one write. The asyncio transport brings TLS,
and `pause_reading` is the backpressure: the broker holds what is not read.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import cast

from wireway.connectors.mqtt import wire
from wireway.connectors.mqtt.client import Reconnecting, Session
from wireway.connectors.mqtt.config import MqttConnection
from wireway.observability import logging as log

logger = log.get("mqtt")
SUBSCRIBE_ID = 1


class _Protocol(asyncio.Protocol):
    """One TCP/TLS connection; hands complete packets to its `Inbound`."""

    def __init__(self, owner: Inbound, generation: int) -> None:
        self.owner = owner
        self.generation = generation
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.heard = 0.0  # loop time of the last bytes from the broker

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.heard = self.owner._loop.time()

    def data_received(self, data: bytes) -> None:
        self.heard = self.owner._loop.time()
        buf = self.rest + data if self.rest else data
        try:
            publishes, others, used = wire.parse(buf, self.owner.v5)
        except wire.MalformedPacket as exc:
            self.rest = b""
            self.owner._protocol_error(self, str(exc))
            return
        self.rest = buf[used:]
        for kind, body in others:
            self.owner._control(self, kind, body)
        if publishes and self.generation == self.owner.generation:
            self.owner.received(publishes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._closed(self, str(exc) if exc else "closed by the broker")


class Inbound(Reconnecting):
    """A subscribing connection that reconnects by itself (persistent session or not).

    Subclasses override the hooks: `received` (the PUBLISH packets of one socket
    read), `ready` (subscribed, with a reason code per topic) and `lost`.
    """

    def __init__(
        self,
        config: MqttConnection,
        session: Session,
        base_dir: Path,
        label: str,
        topics: list[str],
        qos: int,
    ) -> None:
        super().__init__(config, base_dir, label, "input")
        self.session = session
        self.topics = topics
        self.qos = qos
        self.v5 = config.mqtt5
        self._proto: _Protocol | None = None
        self._suback: asyncio.Future[list[int]] | None = None

    # ----- hooks ------------------------------------------------------------------------
    def received(self, publishes: list[wire.Publish]) -> None: ...
    def ready(self, session_present: bool, codes: list[int]) -> None: ...

    # ----- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        name = f"wireway[{self.label}].mqtt-input"
        self._tasks = [
            asyncio.create_task(self._run(), name=name),
            asyncio.create_task(self._keepalive(), name=f"{name}-ping"),
        ]

    async def stop(self) -> None:
        """Send DISCONNECT, close, and stop reconnecting."""
        self._stopping = True
        transport = self._transport()
        if transport is not None and self.connected:
            transport.write(wire.DISCONNECT_PACKET)
            transport.close()  # unlike abort(), sends what is buffered first
            self._proto = None
        await self._halt()

    def pause(self) -> None:
        """Stop reading the socket (messages wait in the socket and at the broker)."""
        self.paused = True
        transport = self._transport()
        if transport is not None and transport.is_reading():
            transport.pause_reading()

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        transport = self._transport()
        if transport is not None and not transport.is_reading():
            assert self._proto is not None
            self._proto.heard = self._loop.time()  # silence while paused was ours
            transport.resume_reading()

    def ack(self, items: list[tuple[int, int]]) -> None:
        """PUBACK / PUBREC for (packet id, qos) pairs received on the current connection."""
        transport = self._transport()
        if transport is not None and self.connected and items:
            transport.write(wire.acks(items))

    # ----- connecting -------------------------------------------------------------------
    def _transport(self) -> asyncio.Transport | None:
        proto = self._proto
        if proto is None or proto.transport is None or proto.transport.is_closing():
            return None
        return proto.transport

    async def _connect(self) -> None:
        self._close_socket()
        self.generation += 1
        proto = _Protocol(self, self.generation)
        self._connack = self._loop.create_future()
        host, port = self.broker.host, self.broker.port
        s = self.session
        async with asyncio.timeout(self.config.connect_timeout):
            await self._loop.create_connection(
                lambda: proto, host, port, ssl=self.tls, server_hostname=host if self.tls else None
            )
            self._proto = proto
            assert proto.transport is not None
            proto.transport.write(
                wire.connect(
                    s.client_id,
                    keepalive=self.config.keepalive,
                    clean=s.clean,
                    v5=self.v5,
                    username=self.username,
                    password=self.password,
                    session_expiry=0 if s.clean else s.session_expiry,
                    receive_maximum=s.receive_maximum,
                )
            )
            session_present, code = await self._connack
            if code:
                raise ConnectionError(f"refused by the broker: {wire.reason_text(code, self.v5)}")
            self.connected = True
            self._suback = self._loop.create_future()
            proto.transport.write(wire.subscribe(SUBSCRIBE_ID, self.topics, self.qos, v5=self.v5))
            codes = await self._suback
        if self.paused:
            proto.transport.pause_reading()
        self.ready(session_present, codes)

    def _close_socket(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.abort()

    def _gone(self, reason: str) -> None:
        if self._suback is not None and not self._suback.done():
            self._suback.set_exception(ConnectionError(f"connection closed: {reason}"))
        super()._gone(reason)

    # ----- packets ----------------------------------------------------------------------
    def _control(self, proto: _Protocol, kind: int, body: bytes) -> None:
        if proto is not self._proto:
            return
        if kind == wire.CONNACK and self._connack is not None and not self._connack.done():
            self._connack.set_result(wire.connack(body, self.v5))
        elif kind == wire.SUBACK:
            mid, codes = wire.suback(body, self.v5)
            if mid == SUBSCRIBE_ID and self._suback is not None and not self._suback.done():
                self._suback.set_result(codes)
        elif kind == wire.PUBREL and len(body) >= 2 and proto.transport is not None:
            proto.transport.write(wire.pubcomp((body[0] << 8) | body[1]))
        elif kind == wire.DISCONNECT:  # MQTT 5: the broker says why it closes
            why = wire.reason_text(body[0], True) if body else "disconnected by the broker"
            self._close_socket()
            self._gone(why)

    def _protocol_error(self, proto: _Protocol, error: str) -> None:
        if proto is self._proto:
            logger.warning("mqtt protocol error", error=error, **self._where())
            self._close_socket()
            self._gone(f"protocol error: {error}")

    def _closed(self, proto: _Protocol, reason: str) -> None:
        if proto is self._proto:
            self._proto = None
            self._gone(reason)

    async def _keepalive(self) -> None:
        """PINGREQ every half keep-alive; a broker silent for 1.5 keep-alives is gone."""
        period = self.config.keepalive / 2
        while True:
            await asyncio.sleep(period)
            proto = self._proto
            transport = self._transport()
            if proto is None or transport is None or not self.connected:
                continue
            if self._loop.time() - proto.heard > self.config.keepalive * 1.5 and not self.paused:
                self._close_socket()
                self._gone("no answer from the broker within the keep-alive")
                continue
            with contextlib.suppress(Exception):
                transport.write(wire.PINGREQ_PACKET)
