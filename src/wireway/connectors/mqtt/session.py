"""wireway's one MQTT session layer: broker URLs, TLS, connecting, reconnecting with
backoff, keep-alive, and reading packets with the bounded codec of `wire`.

A `Connection` is an asyncio Protocol's owner: a socket read is parsed in one pass
(`wire.parse`) and handed to the subclass, the asyncio transport brings TLS, and
`pause_reading` is the backpressure (the broker holds what is not read). The mqtt
input subscribes through it (`inbound.Subscriber`); the mqtt output, the simulator
and the bench publish through it (`outbound.Publisher`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlsplit

from wireway.connectors.mqtt import wire
from wireway.connectors.mqtt.config import MqttConnection
from wireway.connectors.mqtt.quickack import QuickAck
from wireway.connectors.mqtt.skip import Skipper
from wireway.errors import WirewayError
from wireway.observability import logging as log
from wireway.observability.metrics import MQTT_MALFORMED

logger = log.get("mqtt")


@dataclass(frozen=True)
class Broker:
    """Where the broker is, parsed from an mqtt:// or mqtts:// URL."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @property
    def address(self) -> str:
        """The URL without credentials (for logs)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def parse_url(url: str) -> Broker:
    """'mqtts://u:p@host' -> Broker('host', 8883, True, 'u', 'p') (raises ValueError)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"expected mqtt://host:port or mqtts://host:port, got {url!r}")
    tls = parts.scheme == "mqtts"
    return Broker(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def tls_context(config: MqttConnection, base_dir: Path) -> ssl.SSLContext:
    """The TLS context for `tls_*` (relative paths are relative to the pattern file)."""

    def path(p: str) -> str:
        return str(p if Path(p).is_absolute() else base_dir / p)

    try:
        ctx = ssl.create_default_context(cafile=path(config.tls_ca) if config.tls_ca else None)
        if config.tls_cert and config.tls_key:
            ctx.load_cert_chain(path(config.tls_cert), path(config.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise WirewayError(f"mqtt: cannot load the TLS files: {exc}") from exc
    if config.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class Session:
    """The MQTT session a `Connection` asks for."""

    client_id: str
    clean: bool = True
    session_expiry: int = 0  # MQTT 5, when not clean
    receive_maximum: int = 0  # MQTT 5; 0 = the broker's default


class _Protocol(asyncio.Protocol):
    """One TCP/TLS connection; hands complete packets to its `Connection`."""

    def __init__(self, owner: Connection, generation: int) -> None:
        self.owner = owner
        self.generation = generation
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.skipper: Skipper | None = None
        self.heard = 0.0  # loop time of the last bytes from the broker
        self.quickack: QuickAck | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.heard = self.owner._loop.time()
        if self.owner.quickack:
            self.quickack = QuickAck.of(transport)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        self.heard = owner._loop.time()
        if self.quickack is not None:
            self.quickack.now()
        publishes: list[wire.Publish] = []
        acknowledged: list[wire.Ack] = []
        try:
            while data:
                if self.skipper is not None:  # the rest of an oversized PUBLISH goes by
                    done, data = self.skipper.feed(data)
                    if done is None:
                        break
                    self.skipper = None
                    publishes.append(done)
                    MQTT_MALFORMED.labels(owner.label).inc()
                    continue
                buf = self.rest + data if self.rest else data
                data = b""
                try:
                    found, acks, others, used = wire.parse(buf, owner.v5, owner.max_packet_size)
                    self.rest = buf[used:]
                except wire.OversizedPublish as exc:
                    found, acks, others = exc.found
                    self.rest = b""
                    total = exc.start - exc.pos + exc.length
                    self.skipper = Skipper(exc.first, exc.length, total)
                    data = buf[exc.start :]
                publishes += found
                acknowledged += acks
                for kind, body in others:
                    owner._control(self, kind, body)
        except wire.MalformedPacket as exc:
            self.rest = b""
            self.skipper = None
            owner._malformed(self, str(exc))
            return
        if self.generation == owner.generation:
            if acknowledged:
                owner.acknowledged(acknowledged)
            if publishes:
                owner.received(publishes)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.quickack is not None:
            self.quickack.close()
        self.owner._closed(self, str(exc) if exc else "closed by the broker")


class Connection:
    """A broker connection that reconnects by itself, with backoff and jitter.

    Subclasses override the hooks: `opened` (CONNACK accepted: subscribe, say),
    `received` (the PUBLISH packets of one socket read), `acknowledged` (PUBACK /
    PUBREC / PUBCOMP of our publishes), `other` (any other packet) and `lost`.
    """

    def __init__(
        self, config: MqttConnection, session: Session, base_dir: Path, label: str, kind: str
    ) -> None:
        self.config = config
        self.session = session
        self.label = label
        self.kind = kind  # "input" | "output" | a tool's name, for logs
        self.broker = parse_url(config.url)
        self.username = config.username or self.broker.username
        self.password = config.password if config.password is not None else self.broker.password
        self.tls = tls_context(config, base_dir) if self.broker.tls else None
        self.v5 = config.mqtt5
        self.max_packet_size = config.max_packet_size
        # MQTT 5: tell the broker, which then drops larger packets unseen; a subscriber
        # does not, so an oversized message reaches it and goes to the DLQ with its reason
        self.announce_max_packet = True
        self.quickack = False  # TCP_QUICKACK after each read (quickack.py); a subscriber sets it
        self.connected = False
        self.generation = 0  # counts connections: an ack is only sent on its own
        self.paused = False
        self.first_attempt = asyncio.Event()
        self._proto: _Protocol | None = None
        self._connack: asyncio.Future[tuple[bool, int, dict[int, int]]] | None = None
        self._lost = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._loop = asyncio.get_running_loop()

    # ----- hooks (see the class docstring) ------------------------------------------------
    async def opened(self, session_present: bool, properties: dict[int, int]) -> None: ...
    def received(self, publishes: list[wire.Publish]) -> None: ...
    def acknowledged(self, acks: list[wire.Ack]) -> None: ...
    def other(self, kind: int, body: bytes) -> None: ...
    def lost(self, reason: str) -> None: ...

    # ----- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        name = f"wireway[{self.label}].mqtt-{self.kind}"
        self._tasks = [
            asyncio.create_task(self._run(), name=name),
            asyncio.create_task(self._keepalive(), name=f"{name}-ping"),
        ]

    async def stop(self) -> None:
        """Send DISCONNECT, close, and stop reconnecting."""
        self._stopping = True
        transport = self.transport()
        if transport is not None and self.connected:
            transport.write(wire.DISCONNECT_PACKET)
            transport.close()  # unlike abort(), sends what is buffered first
            self._proto = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._close_socket()
        if self.connected:
            self.connected = False
            self.lost("stopped")

    def released(self, packet_id: int) -> None:
        """The broker's PUBREL for a QoS 2 message we took (answered with PUBCOMP)."""

    def pause(self) -> None:
        """Stop reading the socket (messages wait in the socket and at the broker)."""
        self.paused = True
        transport = self.transport()
        if transport is not None and transport.is_reading():
            transport.pause_reading()

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        transport = self.transport()
        if transport is not None and not transport.is_reading():
            assert self._proto is not None
            self._proto.heard = self._loop.time()  # silence while paused was ours
            transport.resume_reading()

    def drop(self) -> None:
        """Close the connection now (the broker redelivers what was not acknowledged)."""
        self._close_socket()
        self._gone("dropped by wireway")

    def transport(self) -> asyncio.Transport | None:
        """The open transport of the current connection, if any."""
        proto = self._proto
        if proto is None or proto.transport is None or proto.transport.is_closing():
            return None
        return proto.transport

    # ----- connecting ---------------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        drops = 0  # connections in a row that were lost soon after they came up
        last_error = ""
        while not self._stopping:
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (any failure: retry with backoff)
                self._close_socket()
                if self.connected:  # failed after CONNACK (in `opened`)
                    self._gone(str(exc) or type(exc).__name__)
                self.first_attempt.set()
                attempt += 1
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                delay = self._backoff(attempt)
                log_at = logger.warning if error != last_error else logger.debug
                retry = {"error": error, "attempt": attempt, "retry_in": round(delay, 2)}
                log_at("mqtt connect failed, retrying", **retry, **self._where())
                last_error = error
                await asyncio.sleep(delay)
                continue
            attempt = 0
            last_error = ""
            self.first_attempt.set()
            logger.info("mqtt connected", **self._where())
            up_since = self._loop.time()
            await self._lost.wait()
            if self._stopping:
                return
            drops = drops + 1 if self._loop.time() - up_since < 10 else 1
            await asyncio.sleep(self._backoff(drops))

    async def _connect(self) -> None:
        self._close_socket()
        self.generation += 1
        self._lost.clear()
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
                    max_packet_size=self.max_packet_size if self.announce_max_packet else 0,
                )
            )
            session_present, code, properties = await self._connack
            if code:
                raise ConnectionError(f"refused by the broker: {wire.reason_text(code, self.v5)}")
            self.connected = True
            await self.opened(session_present, properties)
        if self.paused:
            proto.transport.pause_reading()

    def _close_socket(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.abort()

    def _where(self) -> dict[str, str]:
        return {"connector": self.label, "kind": self.kind, "broker": self.broker.address}

    def _backoff(self, attempt: int) -> float:
        low, high = self.config.reconnect_min, self.config.reconnect_max
        return random.uniform(low, min(high, low * 2 ** max(attempt - 1, 0)))

    def _gone(self, reason: str) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(ConnectionError(f"connection closed: {reason}"))
        was_up = self.connected
        self.connected = False
        self._lost.set()
        if was_up:
            if not self._stopping:
                logger.warning("mqtt connection lost", reason=reason, **self._where())
            self.lost(reason)

    # ----- packets ------------------------------------------------------------------------
    def _control(self, proto: _Protocol, kind: int, body: bytes) -> None:
        """A packet other than PUBLISH and the acks of our publishes (may raise
        MalformedPacket: the caller closes the connection)."""
        if proto is not self._proto:
            return
        if kind == wire.CONNACK:
            result = wire.connack(body, self.v5)
            if self._connack is not None and not self._connack.done():
                self._connack.set_result(result)
        elif kind == wire.PUBREL and proto.transport is not None:
            mid = wire.packet_id(body)
            proto.transport.write(wire.pubcomp(mid))
            self.released(mid)
        elif kind == wire.DISCONNECT:  # MQTT 5: the broker says why it closes
            why = wire.reason_text(body[0], True) if body else "disconnected by the broker"
            self._close_socket()
            self._gone(why)
        elif kind != wire.PINGRESP:
            self.other(kind, body)

    def _malformed(self, proto: _Protocol, error: str) -> None:
        """Bytes that are not MQTT: close (the reconnect starts a clean stream)."""
        if proto is self._proto:
            MQTT_MALFORMED.labels(self.label).inc()
            logger.warning("mqtt malformed packet, closing the connection", error=error, **self._where())
            self._close_socket()
            self._gone(f"malformed packet: {error}")

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
            transport = self.transport()
            if proto is None or transport is None or not self.connected:
                continue
            if self._loop.time() - proto.heard > self.config.keepalive * 1.5 and not self.paused:
                self._close_socket()
                self._gone("no answer from the broker within the keep-alive")
                continue
            with contextlib.suppress(Exception):
                transport.write(wire.PINGREQ_PACKET)
