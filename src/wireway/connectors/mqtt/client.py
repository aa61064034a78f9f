"""What the mqtt input and output share: broker URLs, TLS, and a broker connection
that paho-mqtt drives from the asyncio loop and that reconnects by itself.

paho's asyncio pattern: the socket callbacks register the socket with
`loop.add_reader` / `add_writer`, which call `loop_read` / `loop_write`, and a task
calls `loop_misc` once a second; paho's network thread is never started. Only the
blocking part of connecting (DNS, TCP, TLS handshake) runs in a worker thread, so an
unreachable broker never stalls the loop. Each attempt uses a fresh paho `Client`, so
nothing of a lost connection (unacknowledged packets, packet ids) leaks into the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from wireway.connectors.mqtt.config import MqttConnection
from wireway.errors import WirewayError
from wireway.observability import logging as log

logger = log.get("mqtt")
OK = MQTTErrorCode.MQTT_ERR_SUCCESS


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
    """The MQTT session a `Link` asks for."""

    client_id: str
    clean: bool = True
    session_expiry: int = 0  # MQTT 5, when not clean
    receive_maximum: int = 0  # MQTT 5; 0 = the broker's default
    manual_ack: bool = False
    max_inflight: int = 20  # outgoing QoS 1/2 messages in flight


class Reconnecting:
    """A broker connection that reconnects by itself, with backoff and jitter.

    Subclasses open the connection in `_connect` (CONNACK accepted and `ready` done
    on return), close it in `_close_socket`, and call `_gone` when it is lost.
    """

    def __init__(self, config: MqttConnection, base_dir: Path, label: str, kind: str) -> None:
        self.config = config
        self.label = label
        self.kind = kind  # "input" | "output", for logs
        self.broker = parse_url(config.url)
        self.username = config.username or self.broker.username
        self.password = config.password if config.password is not None else self.broker.password
        self.tls = tls_context(config, base_dir) if self.broker.tls else None
        self.connected = False
        self.generation = 0  # counts connections: an ack is only sent on its own
        self.paused = False
        self.first_attempt = asyncio.Event()
        self._connack: asyncio.Future[Any] | None = None
        self._lost = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._loop = asyncio.get_running_loop()

    def lost(self, reason: str) -> None: ...

    async def _connect(self) -> None:
        raise NotImplementedError

    def _close_socket(self) -> None:
        raise NotImplementedError

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
                if self.connected:  # failed after CONNACK (in `ready`)
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

    def drop(self) -> None:
        """Close the connection now (the broker redelivers what was not acknowledged)."""
        self._close_socket()
        self._gone("dropped by wireway")

    async def _halt(self) -> None:
        """End the tasks and the socket for good (after DISCONNECT, when there was one)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._close_socket()
        if self.connected:
            self.connected = False
            self.lost("stopped")

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


class Link(Reconnecting):
    """One MQTT connection through paho that reconnects by itself, driven by the running loop.

    Subclasses override the hooks: `ready` (CONNACK accepted: subscribe), `received`
    (the messages of one read), `published` (the broker acknowledged publish `mid`),
    `subscribed` (SUBACK, a reason code per topic), `lost` (the connection is gone)
    and `read_budget` (how many packets one wake-up of the reader may handle).
    """

    def __init__(
        self, config: MqttConnection, session: Session, base_dir: Path, label: str, kind: str
    ) -> None:
        super().__init__(config, base_dir, label, kind)
        self.session = session
        self.client: paho.Client | None = None
        self.max_reads = 1000  # packets handled in one wake-up of the reader
        self._fd: int | None = None
        self._sock: Any = None
        self._batch: list[paho.MQTTMessage] | None = None
        self._thread = threading.get_ident()

    # ----- hooks (see the class docstring) ------------------------------------------------
    async def ready(self, client: paho.Client, session_present: bool) -> None: ...
    def received(self, messages: list[paho.MQTTMessage]) -> None: ...
    def published(self, mid: int, reason: ReasonCode) -> None: ...
    def subscribed(self, mid: int, reasons: list[ReasonCode]) -> None: ...
    def lost(self, reason: str) -> None: ...
    def read_budget(self) -> int:
        return self.max_reads

    # ----- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"wireway[{self.label}].mqtt-{self.kind}"),
            asyncio.create_task(self._misc(), name=f"wireway[{self.label}].mqtt-{self.kind}-misc"),
        ]

    async def stop(self) -> None:
        """Disconnect cleanly (DISCONNECT sent, bounded in time) and stop reconnecting."""
        self._stopping = True
        client = self.client
        if client is not None and self.connected:
            self._lost.clear()
            client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), 2.0)
        await self._halt()

    def pause(self) -> None:
        """Stop reading the socket (messages wait in the socket and at the broker)."""
        self.paused = True
        if self._fd is not None:
            self._loop.remove_reader(self._fd)

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        if self._fd is not None:
            self._loop.add_reader(self._fd, self._readable)
            self._loop.call_soon(self._readable)  # TLS may hold bytes the selector cannot see

    # ----- connecting ---------------------------------------------------------------------
    def _make_client(self) -> paho.Client:
        s = self.session
        v5 = self.config.mqtt5
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            clean_session=None if v5 else s.clean,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=s.manual_ack,
        )
        client.connect_timeout = self.config.connect_timeout
        client.max_inflight_messages_set(s.max_inflight)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls is not None:
            client.tls_set_context(self.tls)
            if self.config.tls_insecure:
                client.tls_insecure_set(True)
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    def _blocking_connect(self, client: paho.Client) -> MQTTErrorCode:
        """DNS, TCP, TLS and sending CONNECT: run in a worker thread."""
        host, port, keepalive = self.broker.host, self.broker.port, self.config.keepalive
        if not self.config.mqtt5:
            return client.connect(host, port, keepalive)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if not self.session.clean:
            props.SessionExpiryInterval = self.session.session_expiry
        if self.session.receive_maximum:
            props.ReceiveMaximum = self.session.receive_maximum
        return client.connect(host, port, keepalive, clean_start=self.session.clean, properties=props)

    async def _connect(self) -> None:
        self._detach()
        client = self._make_client()
        self.client = client
        self.generation += 1
        self._lost.clear()
        self._connack = self._loop.create_future()
        future = self._loop.run_in_executor(None, self._blocking_connect, client)
        try:
            rc = await asyncio.shield(future)
        except asyncio.CancelledError:
            # stopping: close the socket the worker thread may still open
            future.add_done_callback(lambda _: _close_quietly(client))
            raise
        if rc != OK:
            raise ConnectionError(paho.error_string(rc))
        sock = client.socket()
        if sock is None:
            raise ConnectionError("no socket")
        self._attach(sock)
        async with asyncio.timeout(self.config.connect_timeout):
            session_present, reason = await self._connack
            if reason.is_failure:
                raise ConnectionError(f"refused by the broker: {reason}")
            self.connected = True
            await self.ready(client, session_present)

    # ----- paho callbacks (on the loop) ---------------------------------------------------
    def _ours(self, client: paho.Client) -> bool:
        return client is self.client and threading.get_ident() == self._thread

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # called in the worker thread during connect: `_connect` attaches afterwards
        if self._ours(client):
            self._attach(sock)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._ours(client):
            self._detach()

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._ours(client) and self._fd is not None:
            self._loop.add_writer(self._fd, self._writable)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._ours(client) and self._fd is not None:
            self._loop.remove_writer(self._fd)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if client is self.client and self._connack is not None and not self._connack.done():
            self._connack.set_result((bool(flags.session_present), reason))

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if client is self.client:
            self._gone(str(reason))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self._batch is not None:
            self._batch.append(message)
        else:
            self.received([message])

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        if client is self.client:
            self.published(mid, reason)

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        if client is self.client:
            self.subscribed(mid, reasons)

    # ----- socket glue --------------------------------------------------------------------
    def _attach(self, sock: Any) -> None:
        if self._fd is not None:
            return
        self._sock = sock
        self._fd = sock.fileno()
        if not self.paused:
            self._loop.add_reader(self._fd, self._readable)
        assert self.client is not None
        if self.client.want_write():
            self._loop.add_writer(self._fd, self._writable)

    def _detach(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._fd = None
        self._sock = None

    def _close_socket(self) -> None:
        self._detach()
        if self.client is not None:
            _close_quietly(self.client)

    def _readable(self) -> None:
        """Read what the socket has: every message of this wake-up goes out as one batch."""
        client = self.client
        if client is None or self._fd is None or self.paused:
            return
        batch: list[paho.MQTTMessage] = []
        self._batch = batch
        try:
            for _ in range(self.read_budget()):
                before = len(batch)
                rc = client.loop_read()
                if rc != OK or self._fd is None or len(batch) == before:
                    break
        finally:
            self._batch = None
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending() and not self.paused:
            self._loop.call_soon(self._readable)  # decrypted bytes the selector cannot see
        if batch:
            self.received(batch)

    def _writable(self) -> None:
        if self.client is not None:
            self.client.loop_write()

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.client is not None and self._fd is not None:
                self.client.loop_misc()


def _close_quietly(client: paho.Client) -> None:
    sock = client.socket()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
