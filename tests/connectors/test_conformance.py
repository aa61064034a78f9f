"""Every registered input and output behaves the same way (the connector contract).

The tests are parametrized over the registry's names, so a new connector is covered
as soon as it registers: it needs a row in INPUTS or OUTPUTS below (how to feed it or
how to observe it, and a bad address to try), else its test fails with "add a
conformance fixture for <type>". For each one: start a pattern, send 1,000 messages,
see all of them arrive (in order where the transport orders), stop; a bad address is
a `wireway check` error naming the field, not a traceback; wireway_messages_total
counts the messages. An input is fed directly and observed through a file output; an
output is fed through a tcp input. The servers are the real local ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aio_pika
import asyncpg
import httpx
import nats
import paho.mqtt.client as paho
import pytest
import redis.asyncio as aioredis
from paho.mqtt.enums import CallbackAPIVersion
from websockets.asyncio.client import connect

from conftest import DATA, free_port, need_service, wireway
from support import Sink, base_url, engine_from, eventually
from wireway import registry
from wireway.config import load_pattern
from wireway.connectors.signing import sign
from wireway.connectors.websocket import WebSocketHubs
from wireway.observability.metrics import REGISTRY
from wireway.runtime.engine import Engine

COUNT = 1000
PG = "postgresql://postgres@127.0.0.1:5432/test"
# components of the sensor application, tested with it (tests/apps/)
APPLICATION = {("input", "sensor_http"), ("output", "sensor_state")}
# and of the field kit (tests/apps/fieldkit/)
APPLICATION |= {("input", "fieldkit_replay"), ("output", "fieldkit_server")}
SERVICES = {"mqtt": ("mosquitto", 1883), "redis": ("redis", 6379), "sql": ("postgresql", 5432)}
SERVICES.update({"amqp": ("rabbitmq", 5672), "nats": ("nats", 4222)})


@dataclass
class Case:
    """One run of the contract: names, ports and what the observer saw."""

    kind: str
    type: str
    tmp: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    port: int = field(default_factory=free_port)
    seen: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pattern(self) -> str:
        return f"conformance-{self.kind}-{self.type}-{self.tag}"

    def saw(self, values: list[Any]) -> None:
        with self.lock:
            self.seen.extend(values)

    def numbers(self) -> list[int]:
        # a format that carries only text (CoT's XML attributes, csv) gives "5" for 5
        with self.lock:
            return [int(v["n"]) for v in self.seen if isinstance(v, dict) and "n" in v]


def messages() -> list[dict[str, int]]:
    return [{"n": i} for i in range(COUNT)]


def lines_of(path: Path) -> list[Any]:
    """The complete lines of a file an output may be writing right now."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(x) for x in text[: text.rfind("\n") + 1].splitlines()]


class MqttPeer:
    """The test's own MQTT client (paho, with its network thread)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"conf-{case.tag}")
        self.subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: case.saw([json.loads(m.payload)])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.connect("127.0.0.1", 1883, 30)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, 1)
        assert self.subscribed.wait(5), "the test's MQTT client could not subscribe"

    def publish(self, topic: str, values: list[dict[str, Any]]) -> None:
        for value in values:
            self.client.publish(topic, json.dumps(value), 1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- inputs: the entry under test, how to feed it, whether the transport orders -----


@dataclass(frozen=True)
class InputFixture:
    entry: Callable[[Case], str]
    feed: Callable[[Case, Engine, Path], Awaitable[None]]
    ordered: bool
    bad: tuple[str, str]  # an entry with a wrong address, and the field the error names


async def feed_http(case: Case, engine: Engine, out: Path) -> None:
    values = messages()
    async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
        for start in range(0, COUNT, 100):  # one request after the other: in order
            answer = await client.post("/conformance", json=values[start : start + 100])
            assert answer.status_code == 202, answer.text


async def feed_tcp(case: Case, engine: Engine, out: Path) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", case.port)
    writer.write(b"".join(json.dumps(v).encode() + b"\n" for v in messages()))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def feed_mqtt(case: Case, engine: Engine, out: Path) -> None:
    peer = MqttPeer(case)
    topic = f"conformance/{case.tag}"
    try:
        # the input subscribes after start: probe until a message gets through
        for attempt in range(100):
            peer.publish(topic, [{"probe": attempt}])
            if any("probe" in v for v in lines_of(out)):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the mqtt input never received a probe")
        peer.publish(topic, messages())
        await eventually(lambda: len(lines_of(out)) >= COUNT, timeout=30)
    finally:
        peer.close()


async def feed_redis(case: Case, engine: Engine, out: Path) -> None:
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    key = f"conformance-in-{case.tag}"
    try:  # LPUSH, taken from the right end: in order
        await client.lpush(key, *[json.dumps(v) for v in messages()])
        await eventually(lambda: len(lines_of(out)) >= COUNT, timeout=30)
    finally:
        await client.delete(key, f"{key}:processing")
        await client.aclose()


async def feed_webhook(case: Case, engine: Engine, out: Path) -> None:
    values = messages()
    async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
        for start in range(0, COUNT, 100):  # one signed delivery of 100 JSON lines after the other
            body = b"".join(json.dumps(v).encode() + b"\n" for v in values[start : start + 100])
            headers = {
                "X-Hub-Signature-256": sign(b"conformance", body),
                "X-GitHub-Delivery": f"{case.tag}-{start}",
            }
            answer = await client.post("/conformance", content=body, headers=headers)
            assert answer.status_code == 202, answer.text


async def feed_udp(case: Case, engine: Engine, out: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i, value in enumerate(messages()):
            sock.sendto(json.dumps(value).encode(), ("127.0.0.1", case.port))
            if i % 20 == 19:  # a modest pace: UDP drops what a full receive buffer cannot take
                await asyncio.sleep(0.002)


async def feed_amqp(case: Case, engine: Engine, out: Path) -> None:
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    queue = f"conformance-in-{case.tag}"  # declared by the input at its start
    try:
        channel = await connection.channel()
        for value in messages():
            await channel.default_exchange.publish(aio_pika.Message(json.dumps(value).encode()), queue)
        await eventually(lambda: len(lines_of(out)) >= COUNT, timeout=30)
        await channel.queue_delete(queue)
    finally:
        await connection.close()


async def feed_nats(case: Case, engine: Engine, out: Path) -> None:
    client = await nats.connect("nats://127.0.0.1:4222")
    js = client.jetstream()  # the input created the stream at its start
    try:
        for value in messages():
            await js.publish(f"conformance.{case.tag}", json.dumps(value).encode())
        await eventually(lambda: len(lines_of(out)) >= COUNT, timeout=30)
        await js.delete_stream(f"conformance_{case.tag}")
    finally:
        await client.close()


class ItemServer:
    """A local HTTP server the http_poll input pages through: GET /items?after=N answers
    `{"items": [...]}` with up to 100 of the 1,000 messages whose `n` is above N."""

    running: dict[str, ItemServer] = {}  # by case tag, closed by the feed

    def __init__(self, case: Case) -> None:
        values = messages()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                after = int(query.get("after", ["-1"])[0])
                body = json.dumps({"items": [v for v in values if v["n"] > after][:100]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", case.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        ItemServer.running[case.tag] = self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def http_poll_entry(case: Case) -> str:
    ItemServer(case)
    return (
        f"{{type: http_poll, url: 'http://127.0.0.1:{case.port}/items', interval: 0.01, "
        "items: response.body.items, cursor: 'response.body.items.map(i, i.n).max()', "
        "cursor_param: after}"
    )


async def feed_http_poll(case: Case, engine: Engine, out: Path) -> None:
    """The input polls by itself: wait for the 1,000 items, then stop the server."""
    try:
        await eventually(lambda: len(lines_of(out)) >= COUNT, timeout=30)
    finally:
        ItemServer.running.pop(case.tag).close()


class FakeKismet:
    """A local stand-in for Kismet's REST API (the shapes of Kismet 2025-09-R1):
    POST /devices/last-time/<ts>/devices.json with a form variable `json` holding the
    `fields` list answers the 1,000 devices whose last_time is above ts, reduced to
    those fields (a field's value under its new name); the messages' `n` is each
    device's packet count. Any other path answers Kismet's clock."""

    running: dict[str, FakeKismet] = {}  # by case tag, closed by the feed

    def __init__(self, case: Case) -> None:
        devices = [
            {
                "kismet.device.base.packets.total": v["n"],
                "kismet.device.base.last_time": 1764806400 + v["n"] // 100,
            }
            for v in messages()
        ]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                fields = json.loads(parse_qs(body.decode())["json"][0])["fields"]
                ts = int(self.path.split("/")[3])
                found = [d for d in devices if d["kismet.device.base.last_time"] > ts]
                named = [(f[0], f[1]) if isinstance(f, list) else (f, f) for f in fields]
                self.answer([{name: d.get(path, 0) for path, name in named} for d in found])

            def do_GET(self) -> None:
                self.answer({"kismet.system.timestamp.sec": 1764806410, "kismet.system.timestamp.usec": 0})

            def answer(self, value: Any) -> None:
                data = json.dumps(value).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", case.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        FakeKismet.running[case.tag] = self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def kismet_entry(case: Case) -> str:
    FakeKismet(case)
    return (
        f"{{type: kismet, url: 'http://127.0.0.1:{case.port}', api_token: conformance, interval: 0.01, "
        "fields: [[kismet.device.base.packets.total, n], kismet.device.base.last_time]}"
    )


async def feed_kismet(case: Case, engine: Engine, out: Path) -> None:
    """The input polls by itself: wait for the 1,000 devices, then stop the server."""
    try:
        await eventually(lambda: len(lines_of(out)) >= COUNT, timeout=30)
    finally:
        FakeKismet.running.pop(case.tag).close()


async def feed_schedule(case: Case, engine: Engine, out: Path) -> None:
    """Nothing to send: the input makes its own 1,000 ticks (`count: 1000`)."""
    await eventually(lambda: len(lines_of(out)) >= COUNT, timeout=30)


EXEC_LINES = "import json\nfor n in range(1000): print(json.dumps({'n': n}))"


async def feed_exec(case: Case, engine: Engine, out: Path) -> None:
    """Nothing to send: the command prints the 1,000 lines itself (and is not restarted)."""
    await eventually(lambda: len(lines_of(out)) >= COUNT, timeout=30)


async def feed_pipe(case: Case, engine: Engine, out: Path) -> None:
    """Two writers one after the other (the input opens the FIFO again after the first)."""
    values = messages()
    for part in (values[:500], values[500:]):
        data = b"".join(json.dumps(v).encode() + b"\n" for v in part)
        await asyncio.to_thread((case.tmp / "in.fifo").write_bytes, data)


# The stdin input reads a file descriptor, standard input by default. pytest holds this
# process's stdin, so the test hands the input the read end of a pipe (`fd:`) and writes
# the 1,000 lines to the other end, then closes it: the end of input, as after `printf |`.
STDIN_PIPES: dict[str, tuple[int, int]] = {}


def stdin_entry(case: Case) -> str:
    read_end, write_end = os.pipe()
    STDIN_PIPES[case.tag] = (read_end, write_end)
    return f"{{type: stdin, fd: {read_end}}}"


async def feed_stdin(case: Case, engine: Engine, out: Path) -> None:
    read_end, write_end = STDIN_PIPES.pop(case.tag)
    os.close(read_end)  # the input reads its own copy
    data = b"".join(json.dumps(v).encode() + b"\n" for v in messages())
    try:
        await asyncio.to_thread(os.write, write_end, data)  # blocks while the pipe is full
    finally:
        os.close(write_end)


async def feed_unix(case: Case, engine: Engine, out: Path) -> None:
    _, writer = await asyncio.open_unix_connection(str(case.tmp / "in.sock"))
    writer.write(b"".join(json.dumps(v).encode() + b"\n" for v in messages()))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


# tak: 1,000 CoT events streamed over TCP as a TAK client writes them (a declaration
# before each event, no delimiter), in pieces that cut events apart. A CoT event has no
# field for the contract's `n`: it rides as an extra attribute of <event>, which the cot
# format hands on as text ("5", not 5), so the contract's check of numbers fails here
# although all 1,000 events arrive in order.
def cot_event(n: int) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<event version="2.0" '
        f'uid="conf-{n}" n="{n}" type="a-f-G" how="m-g" time="2026-06-01T12:00:00.000Z" '
        'start="2026-06-01T12:00:00.000Z" stale="2026-06-01T12:05:00.000Z"><point lat="51.5" '
        'lon="0.0" hae="9999999.0" ce="9999999.0" le="9999999.0"/><detail/></event>'
    ).encode()


async def feed_tak(case: Case, engine: Engine, out: Path) -> None:
    data = b"".join(cot_event(n) for n in range(COUNT))
    _, writer = await asyncio.open_connection("127.0.0.1", case.port)
    for start in range(0, len(data), 4096):
        writer.write(data[start : start + 4096])
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def feed_file(case: Case, engine: Engine, out: Path) -> None:
    # appended in pieces, as a logging program would, while the input follows the file
    with (case.tmp / "in.jsonl").open("a") as f:
        values = messages()
        for start in range(0, COUNT, 100):
            f.write("".join(json.dumps(v) + "\n" for v in values[start : start + 100]))
            f.flush()
            await asyncio.sleep(0.001)


# gpsd: the family's own tests (tests/connectors/gpsd) run Debian's gpsd; the contract's
# `n` cannot travel through it (its reports have fixed keys), so here a stand-in replays
# the recorded gpsd 3.22 session (tests/data): its VERSION banner, and after ?WATCH its
# DEVICES and WATCH answers, then 1,000 fixes, a TPV and a GST each, CR-LF, with the
# contract's `n` added to each GST (classes other than TPV and SKY are passed as sent).
GPSD_SESSION = [
    json.loads(line)
    for line in (DATA / "gpsd_3.22_session_transcript.txt").read_text().splitlines()
    if line.startswith("{")
]


class GpsdReplay:
    """Answers one gpsd client on `case.port` with the recorded session's lines."""

    running: dict[str, GpsdReplay] = {}  # by case tag, closed by the feed

    def __init__(self, case: Case) -> None:
        self.server = socket.create_server(("127.0.0.1", case.port))
        self.server.settimeout(30)
        threading.Thread(target=self.serve, daemon=True).start()
        GpsdReplay.running[case.tag] = self

    def serve(self) -> None:
        def line(report: dict[str, Any]) -> bytes:
            return json.dumps(report, separators=(",", ":")).encode() + b"\r\n"

        first = {r["class"]: r for r in reversed(GPSD_SESSION)}
        try:
            client, _ = self.server.accept()
        except OSError:
            return
        with client:
            client.sendall(line(first["VERSION"]))
            client.settimeout(30)
            assert client.recv(1024).startswith(b"?WATCH=")
            client.sendall(line(first["DEVICES"]) + line(first["WATCH"]))
            for n in range(COUNT):
                client.sendall(line(first["TPV"]) + line({**first["GST"], "n": n}))
            client.recv(1)  # until the input closes the connection

    def close(self) -> None:
        self.server.close()


def gpsd_entry(case: Case) -> str:
    GpsdReplay(case)
    return f"{{type: gpsd, address: '127.0.0.1:{case.port}', reports: [gst]}}"


async def feed_gpsd(case: Case, engine: Engine, out: Path) -> None:
    """The stand-in sends by itself once the input has sent its WATCH."""
    try:
        await eventually(lambda: len(lines_of(out)) >= COUNT, timeout=30)
    finally:
        GpsdReplay.running.pop(case.tag).close()


# mavlink: pymavlink sends as a vehicle would to the input's `udpin:` port: a heartbeat,
# then 1,000 positions (GLOBAL_POSITION_INT), each followed by the contract's `n` as a
# named value (NAMED_VALUE_INT "n", which the input turns into {"n": ...}); UDP, so at a
# modest pace.
def mavlink_entry(case: Case) -> str:
    return (
        f"{{type: mavlink, connection: 'udpin:127.0.0.1:{case.port}', "
        "messages: [GLOBAL_POSITION_INT, NAMED_VALUE_INT]}"
    )


async def feed_mavlink(case: Case, engine: Engine, out: Path) -> None:
    from wireway.connectors.mavlink.input import mavutil

    inp = engine.runners[0].inputs[0]
    await eventually(lambda: getattr(inp, "opened", False))  # listening on its port
    vehicle = mavutil().mavlink_connection(f"udpout:127.0.0.1:{case.port}", source_system=1)
    try:
        vehicle.mav.heartbeat_send(2, 3, 0, 0, 0)  # a quadrotor, ArduPilot
        for n in range(COUNT):
            vehicle.mav.global_position_int_send(n, 514778000 + n, -14000, 45300, 0, 0, 0, 0, 65535)
            vehicle.mav.named_value_int_send(n, b"n", n)
            if n % 20 == 19:
                await asyncio.sleep(0.002)
    finally:
        vehicle.close()


INPUTS: dict[str, InputFixture] = {
    "amqp": InputFixture(
        lambda c: f"{{type: amqp, queue: conformance-in-{c.tag}, declare: true}}",
        feed_amqp,
        ordered=True,  # one queue, one consumer, batches acknowledged in order
        bad=("{type: amqp, url: 'http://127.0.0.1:5672', queue: q}", "url"),
    ),
    "nats": InputFixture(
        lambda c: (
            f"{{type: nats, jetstream: true, subject: conformance.{c.tag}, "
            f"stream: conformance_{c.tag}, create: true}}"
        ),
        feed_nats,
        ordered=True,  # one stream, one pull consumer, batches taken in order
        bad=("{type: nats, url: 'http://127.0.0.1:4222', subject: a}", "url"),
    ),
    "http": InputFixture(
        lambda c: "{type: http, address: /conformance}",
        feed_http,
        ordered=True,
        bad=("{type: http, address: conformance}", "address"),
    ),
    "tcp": InputFixture(
        lambda c: f'{{type: tcp, address: "127.0.0.1:{c.port}"}}',
        feed_tcp,
        ordered=True,
        bad=('{type: tcp, address: "127.0.0.1"}', "address"),
    ),
    "udp": InputFixture(
        lambda c: f'{{type: udp, address: "127.0.0.1:{c.port}", receive_buffer: 4194304}}',
        feed_udp,
        ordered=False,  # UDP does not promise order
        bad=('{type: udp, address: "localhost:5000"}', "address"),
    ),
    "unix": InputFixture(
        lambda c: f"{{type: unix, path: '{c.tmp}/in.sock'}}",
        feed_unix,
        ordered=True,
        bad=("{type: unix, path: 'in.sock', mode: 'rw'}", "mode"),
    ),
    "mqtt": InputFixture(
        lambda c: (
            f"{{type: mqtt, url: 'mqtt://127.0.0.1:1883', topics: [conformance/{c.tag}], "
            f"client_id: conf-in-{c.tag}, clean_session: true}}"
        ),
        feed_mqtt,
        ordered=True,  # one publisher, QoS 1, one topic
        bad=("{type: mqtt, url: 'http://127.0.0.1:1883', topics: [a]}", "url"),
    ),
    "redis": InputFixture(
        lambda c: f"{{type: redis, mode: list, key: conformance-in-{c.tag}}}",
        feed_redis,
        ordered=True,
        bad=("{type: redis, url: 'http://127.0.0.1:6379', mode: list, key: k}", "url"),
    ),
    "webhook": InputFixture(
        lambda c: "{type: webhook, address: /conformance, secret: conformance, format: jsonl}",
        feed_webhook,
        ordered=True,
        bad=("{type: webhook, address: conformance, secret: k}", "address"),
    ),
    "http_poll": InputFixture(
        http_poll_entry,  # starts the server the input polls (10 pages of 100, by cursor)
        feed_http_poll,
        ordered=True,  # pages asked one after the other, each after the last one's cursor
        bad=("{type: http_poll, url: '127.0.0.1:9000/items'}", "url"),
    ),
    "kismet": InputFixture(
        kismet_entry,  # starts a stand-in for Kismet's REST API serving 1,000 devices
        feed_kismet,
        ordered=False,  # Kismet answers the devices in no promised order
        bad=("{type: kismet, url: '127.0.0.1:2501'}", "url"),
    ),
    # a schedule has nothing to feed: its ticks carry the contract's `n` (0, 1, 2, ...),
    # so 1,000 ticks 1 ms apart, then `count` ends them; its "address" is the cron
    "schedule": InputFixture(
        lambda c: "{type: schedule, interval: 1ms, count: 1000}",
        feed_schedule,
        ordered=True,
        bad=("{type: schedule, cron: '61 2 * * *'}", "cron"),
    ),
    "exec": InputFixture(
        lambda c: json.dumps(
            {"type": "exec", "command": [sys.executable, "-c", EXEC_LINES], "restart": "no"}
        ),
        feed_exec,
        ordered=True,  # one process's stdout
        bad=("{type: exec, command: 'ls -l'}", "command"),  # a command line needs shell: true
    ),
    "pipe": InputFixture(
        lambda c: f"{{type: pipe, path: '{c.tmp}/in.fifo'}}",
        feed_pipe,
        ordered=True,
        bad=("{type: pipe, path: 'fifos/'}", "path"),
    ),
    "stdin": InputFixture(stdin_entry, feed_stdin, ordered=True, bad=("{type: stdin, fd: -1}", "fd")),
    "gpsd": InputFixture(
        gpsd_entry,  # starts the stand-in replaying gpsd's recorded session (see GpsdReplay)
        feed_gpsd,
        ordered=True,  # one TCP connection
        bad=("{type: gpsd, address: '127.0.0.1'}", "address"),
    ),
    "mavlink": InputFixture(
        mavlink_entry,
        feed_mavlink,
        ordered=False,  # UDP does not promise order
        bad=("{type: mavlink, connection: 'udpin:14550'}", "connection"),
    ),
    "tak": InputFixture(
        lambda c: f"{{type: tak, address: 'tcp://127.0.0.1:{c.port}'}}",
        feed_tak,
        ordered=True,  # one TCP connection
        bad=("{type: tak, address: 'http://127.0.0.1:8087'}", "address"),
    ),
    "file": InputFixture(
        lambda c: f"{{type: file, path: '{c.tmp}/in.jsonl', format: jsonl}}",
        feed_file,
        ordered=True,  # one file, read in order
        bad=("{type: file, path: 'logs/'}", "path"),
    ),
}


# ---- outputs: the entry under test and how to observe what it delivered -------------


@dataclass(frozen=True)
class OutputFixture:
    entry: Callable[[Case], str]
    observe: Callable[[Case, pytest.FixtureRequest], Any]  # an async context manager
    ordered: bool
    bad: tuple[str, str] | None  # None: the type has no address to get wrong


@asynccontextmanager
async def observe_file(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    yield lambda: case.saw(lines_of(case.tmp / "out.jsonl")[len(case.seen) :])


@asynccontextmanager
async def observe_stdout(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    capture = request.getfixturevalue("capsys")

    def poll() -> None:
        text = capture.readouterr().out
        case.saw([json.loads(x) for x in text.splitlines() if x.startswith("{")])

    yield poll


@asynccontextmanager
async def observe_http_client(
    case: Case, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[[], None]]:
    sink = Sink()
    case.port = sink.port
    try:
        yield lambda: case.saw(sink.received[len(case.seen) :])
    finally:
        sink.close()


@asynccontextmanager
async def observe_mqtt(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    peer = MqttPeer(case)
    peer.subscribe(f"conformance-out/{case.tag}")
    try:
        yield lambda: None  # paho's thread records what arrives
    finally:
        peer.close()


@asynccontextmanager
async def observe_redis(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    pubsub = client.pubsub()
    await pubsub.subscribe(f"conformance-{case.tag}")

    async def drain() -> None:
        for _ in range(COUNT * 2):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if message is None:
                return
            case.saw([json.loads(message["data"])])

    tasks: set[asyncio.Task[None]] = set()

    def poll() -> None:
        if not tasks:
            task = asyncio.get_running_loop().create_task(drain())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    try:
        yield poll
    finally:
        for task in list(tasks):
            await task
        await pubsub.aclose()
        await client.aclose()


@asynccontextmanager
async def observe_sql(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    table = f"conformance_{case.tag}"
    database = await asyncpg.connect(PG)
    await database.execute(f"CREATE TABLE {table} (message_id text PRIMARY KEY, n integer NOT NULL)")
    tasks: set[asyncio.Task[None]] = set()

    async def query() -> None:
        rows = await database.fetch(f"SELECT n FROM {table} ORDER BY n")
        with case.lock:
            case.seen[:] = [{"n": row["n"]} for row in rows]

    def poll() -> None:
        if not tasks:
            task = asyncio.get_running_loop().create_task(query())
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    try:
        yield poll
    finally:
        for task in list(tasks):
            await task
        await database.execute(f"DROP TABLE IF EXISTS {table}")
        await database.close()


@asynccontextmanager
async def observe_websocket(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    case.port = free_port()  # the output's own extra port: reachable before the engine has an address
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def listen() -> None:
        for _ in range(200):  # until the engine has started its server
            try:
                async with connect(f"ws://127.0.0.1:{case.port}/conformance") as client:
                    async for text in client:
                        received.put_nowait(json.loads(text))
                return
            except OSError:
                await asyncio.sleep(0.05)

    listener = asyncio.get_running_loop().create_task(listen())

    def poll() -> None:
        while not received.empty():
            message = received.get_nowait()
            if message.get("type") == "conformance":
                case.saw([message["data"]])

    try:
        yield poll
    finally:
        listener.cancel()


@asynccontextmanager
async def observe_tcp(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    """A plain TCP server of the test's own, keeping every JSON line it reads."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            case.saw([json.loads(line)])
        writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", case.port)
    try:
        yield lambda: None
    finally:
        server.close()


@asynccontextmanager
async def observe_udp(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    """The test's own UDP socket (a large receive buffer: a batch arrives at once)."""

    class Keep(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            case.saw([json.loads(data)])

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", case.port))
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Keep, sock=sock)
    try:
        yield lambda: None
    finally:
        transport.close()


@asynccontextmanager
async def observe_amqp(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    """The test's own consumer of the queue the output declares (declared here first)."""
    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel()
    queue = await channel.declare_queue(f"conformance-out-{case.tag}", durable=True)

    async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        case.saw([json.loads(message.body)])
        await message.ack()

    await queue.consume(keep)
    try:
        yield lambda: None
    finally:
        await queue.delete(if_unused=False)
        await connection.close()


@asynccontextmanager
async def observe_nats(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    """A core subscriber of the subject the output publishes to its stream."""
    client = await nats.connect("nats://127.0.0.1:4222")

    async def keep(msg: Any) -> None:
        case.saw([json.loads(msg.data)])

    await client.subscribe(f"conformance-out.{case.tag}", cb=keep)
    await client.flush()
    try:
        yield lambda: None
    finally:
        await client.jetstream().delete_stream(f"conformance_out_{case.tag}")
        await client.close()


@asynccontextmanager
async def observe_exec(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    yield lambda: case.saw(lines_of(case.tmp / "exec-out.jsonl")[len(case.seen) :])


@asynccontextmanager
async def observe_pipe(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    """A reader on the FIFO (made here: the output takes an existing one) for the whole run."""
    fifo = case.tmp / "out.fifo"
    os.mkfifo(fifo, 0o600)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(fd, "rb", buffering=0))

    async def read() -> None:
        while line := await reader.readline():
            case.saw([json.loads(line)])

    task = loop.create_task(read())
    try:
        yield lambda: None  # the task records what arrives
    finally:
        task.cancel()
        transport.close()


@asynccontextmanager
async def observe_unix(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    """A unix stream server of the test's own, keeping every JSON line it reads."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            case.saw([json.loads(line)])
        writer.close()

    server = await asyncio.start_unix_server(client, str(case.tmp / "out.sock"))
    try:
        yield lambda: None
    finally:
        server.close()


@asynccontextmanager
async def observe_tak(case: Case, request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], None]]:
    """A TAK server of the test's own: each connection cut after `</event>`, each
    event's uid `conf-N` giving back the message's `n`."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rest = b""
        while chunk := await reader.read(65536):
            *events, rest = (rest + chunk).split(b"</event>")
            for event in events:
                uid = ET.fromstring(event.strip() + b"</event>").get("uid", "")
                case.saw([{"n": int(uid.removeprefix("conf-"))}])
        writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", case.port)
    try:
        yield lambda: None
    finally:
        server.close()


OUTPUTS: dict[str, OutputFixture] = {
    "amqp": OutputFixture(
        lambda c: (
            f"{{type: amqp, routing_key: conformance-out-{c.tag}, queue: conformance-out-{c.tag}, "
            "payload_only: true}"
        ),
        observe_amqp,
        ordered=True,  # one channel, confirms awaited per batch
        bad=("{type: amqp, url: 'http://127.0.0.1:5672', routing_key: k}", "url"),
    ),
    "nats": OutputFixture(
        lambda c: (
            f"{{type: nats, jetstream: true, subject: conformance-out.{c.tag}, "
            f"stream: conformance_out_{c.tag}, create: true, payload_only: true}}"
        ),
        observe_nats,
        ordered=True,  # one connection, PubAcks awaited per batch
        bad=("{type: nats, url: 'http://127.0.0.1:4222', subject: a}", "url"),
    ),
    "file": OutputFixture(
        lambda c: f"{{type: file, address: '{c.tmp}/out.jsonl', payload_only: true}}",
        observe_file,
        ordered=True,
        bad=("{type: file, address: 'out/'}", "address"),
    ),
    "stdout": OutputFixture(lambda c: "{type: stdout, payload_only: true}", observe_stdout, True, None),
    "http_client": OutputFixture(
        lambda c: f"{{type: http_client, address: 'http://127.0.0.1:{c.port}/hook', payload_only: true}}",
        observe_http_client,
        ordered=False,  # requests run concurrently (`concurrency`)
        bad=("{type: http_client, address: '127.0.0.1:9000/hook'}", "address"),
    ),
    "mqtt": OutputFixture(
        lambda c: (
            f"{{type: mqtt, url: 'mqtt://127.0.0.1:1883', topic: 'conformance-out/{c.tag}', "
            f"client_id: conf-out-{c.tag}}}"
        ),
        observe_mqtt,
        ordered=True,
        bad=("{type: mqtt, url: 'tcp://127.0.0.1:1883', topic: t}", "url"),
    ),
    "redis": OutputFixture(
        lambda c: f"{{type: redis, url: 'redis://127.0.0.1:6379/0', channel: 'conformance-{c.tag}'}}",
        observe_redis,
        ordered=True,
        bad=("{type: redis, url: 'http://127.0.0.1:6379'}", "url"),
    ),
    "sql": OutputFixture(
        lambda c: (
            f"{{type: sql, url: '{PG}', table: conformance_{c.tag}, "
            "columns: {message_id: messageId, n: payload.n}}"
        ),
        observe_sql,
        ordered=False,  # a table has no order
        bad=("{type: sql, url: 'mysql://127.0.0.1/test', table: t, columns: {n: payload.n}}", "url"),
    ),
    "tcp": OutputFixture(
        lambda c: f"{{type: tcp, address: '127.0.0.1:{c.port}', payload_only: true}}",
        observe_tcp,
        ordered=True,
        bad=("{type: tcp, address: '127.0.0.1'}", "address"),
    ),
    "udp": OutputFixture(
        lambda c: f"{{type: udp, address: '127.0.0.1:{c.port}', payload_only: true, batch_size: 50}}",
        observe_udp,
        ordered=False,  # UDP does not promise order
        bad=("{type: udp, address: '127.0.0.1'}", "address"),
    ),
    "tak": OutputFixture(
        lambda c: (
            f"{{type: tak, address: 'tcp://127.0.0.1:{c.port}', format: {{type: cot, "
            "set: {uid: '\"conf-\" + string(payload.n)', lat: '51.5', lon: '0.0'}}}"
        ),
        observe_tak,
        ordered=True,  # one TCP connection
        bad=("{type: tak, address: 'http://127.0.0.1:8087'}", "address"),
    ),
    "unix": OutputFixture(
        lambda c: f"{{type: unix, path: '{c.tmp}/out.sock', payload_only: true}}",
        observe_unix,
        ordered=True,
        bad=("{type: unix, path: 'out/'}", "path"),
    ),
    "websocket": OutputFixture(
        lambda c: (
            f"{{type: websocket, path: /conformance, port: {c.port}, kind: conformance, "
            "queue_size: 5000, buffer: memory}"
        ),
        observe_websocket,
        ordered=True,
        bad=("{type: websocket, path: conformance}", "path"),
    ),
    "exec": OutputFixture(
        lambda c: (
            f"{{type: exec, command: \"cat >> '{c.tmp}/exec-out.jsonl'\", shell: true, payload_only: true}}"
        ),
        observe_exec,
        ordered=True,
        bad=("{type: exec, command: cat}", "command"),  # a command line needs shell: true
    ),
    "pipe": OutputFixture(
        lambda c: f"{{type: pipe, path: '{c.tmp}/out.fifo', payload_only: true}}",
        observe_pipe,
        ordered=True,
        bad=("{type: pipe, path: 'fifos/'}", "path"),
    ),
}


def components(kind: str) -> list[str]:
    return [name for name in registry.names(kind) if (kind, name) not in APPLICATION]


def fixture_of(kind: str, name: str) -> Any:
    table: dict[str, Any] = INPUTS if kind == "input" else OUTPUTS
    if name not in table:
        pytest.fail(f"add a conformance fixture for {name} ({kind}) to {__file__}")
    if name in SERVICES:
        need_service(*SERVICES[name])
    return table[name]


def pattern_text(case: Case, inputs: str, outputs: str) -> str:
    return f"""
pattern: {{name: {case.pattern}}}
interfaces:
  input:
    - {inputs}
  output:
    - {outputs}
"""


def counted(case: Case, component: str, outcome: str) -> float:
    labels = {"pattern": case.pattern, "component": component, "outcome": outcome}
    return REGISTRY.get_sample_value("wireway_messages_total", labels) or 0.0


def check_arrived(case: Case, ordered: bool) -> None:
    numbers = case.numbers()
    assert sorted(numbers) == list(range(COUNT)), f"{len(numbers)} of {COUNT} arrived"
    if ordered:
        assert numbers == list(range(COUNT)), "out of order"


@pytest.mark.parametrize("name", components("input"))
async def test_input_carries_messages(name: str, tmp_path: Path) -> None:
    """Start, feed 1,000 messages, see them in a file output (in order where the transport
    orders), stop; each is counted as accepted."""
    fixture: InputFixture = fixture_of("input", name)
    case = Case("input", name, tmp_path)
    out = tmp_path / "out.jsonl"
    output = f"{{type: file, address: '{out}', payload_only: true}}"
    async with engine_from(tmp_path, pattern_text(case, fixture.entry(case), output)) as engine:
        await fixture.feed(case, engine, out)
        await eventually(lambda: len([v for v in lines_of(out) if "n" in v]) >= COUNT, timeout=30)
        # outputs may see messages while their outbox commit is under way; the input
        # counts them once it returns
        await eventually(lambda: counted(case, "ingest", "accepted") >= COUNT)
    case.saw(lines_of(out))
    check_arrived(case, fixture.ordered)
    assert counted(case, "ingest", "accepted") >= COUNT


@pytest.mark.parametrize("name", components("output"))
async def test_output_delivers_messages(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Start, send 1,000 messages through a tcp input, see the peer get them (in order where
    the transport orders), stop; each is counted as delivered."""
    fixture: OutputFixture = fixture_of("output", name)
    case = Case("output", name, tmp_path)
    async with fixture.observe(case, request) as poll:
        feeder = Case("input", "tcp", tmp_path)
        entry = "{name: under-test, " + fixture.entry(case).removeprefix("{")
        text = pattern_text(case, f'{{type: tcp, address: "127.0.0.1:{feeder.port}"}}', entry)
        async with engine_from(tmp_path, text) as engine:
            if name == "websocket":  # a live output: only clients connected now get messages
                hubs = engine.service(WebSocketHubs)
                hub = hubs.get("/conformance") if hubs is not None else None
                assert hub is not None
                await eventually(lambda: hub.clients > 0)
            await feed_tcp(feeder, engine, tmp_path)

            def arrived() -> bool:
                poll()
                return len(case.numbers()) >= COUNT

            await eventually(arrived, timeout=30)
            await eventually(lambda: counted(case, "under-test", "delivered") >= COUNT)
        poll()
    check_arrived(case, fixture.ordered)
    assert counted(case, "under-test", "delivered") == COUNT


@pytest.mark.parametrize(
    ("kind", "name"),
    [("input", n) for n in components("input")] + [("output", n) for n in components("output")],
)
def test_bad_address_is_named(kind: str, name: str, tmp_path: Path) -> None:
    """A wrong address is an error of `wireway check` on the line of the field, no traceback."""
    table: dict[str, Any] = INPUTS if kind == "input" else OUTPUTS
    if name not in table:
        pytest.fail(f"add a conformance fixture for {name} ({kind}) to {__file__}")
    if table[name].bad is None:
        return  # nothing to point anywhere (stdout)
    entry, key = table[name].bad
    other = '{type: tcp, address: "127.0.0.1:7000"}' if kind == "output" else "{type: stdout}"
    case = Case(kind, name, tmp_path)
    text = pattern_text(case, *((entry, other) if kind == "input" else (other, entry)))
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    pattern, errors = load_pattern(path)
    assert pattern is None, f"a bad {key} was accepted"
    assert errors
    line = 5 if kind == "input" else 7  # the entry's line in pattern_text
    assert any(key in str(e) and f"bad.yaml:{line}" in str(e) for e in errors), [str(e) for e in errors]
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert key in result.stdout + result.stderr
