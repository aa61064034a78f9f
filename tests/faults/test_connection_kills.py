"""A Redis, NATS or RabbitMQ connection of wireway's killed mid-run, several times.

Redis (quick, stays in `make test`): HTTP readings to the `redis` output (a list);
wireway's own connections are found by their local port and killed with `CLIENT
KILL ADDR`, so other clients of the shared server are left alone. NATS and RabbitMQ:
the test publishes (a JetStream PubAck / a publisher confirm is the acknowledgement)
and wireway's input reads through a TCP proxy the test owns and cuts; readings go to
an idempotent SQLite table.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from fault_harness import (
    Acked,
    HttpLoad,
    Wireway,
    assert_none_lost,
    record,
    sqlite_seqs,
    wait_delivered,
)
from fault_net import TcpProxy

from conftest import need_service

KILLS = 4

REDIS_PATTERN = """
pattern: {{name: redis-kill, type: message-bus}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - {{type: redis, mode: list, channel: "{key}", push: rpush}}
settings: {{buffer: durable, batch_size: 200, retries: 50, backoff_max: 0.5, breaker_timeout: 0.5}}
"""

SQLITE_OUT = """
  output:
    - type: sql
      url: "sqlite:///{db}"
      table: t
      columns: {{message_id: messageId, seq: payload.seq}}
settings: {{buffer: durable, buffer_size: 200000, batch_size: 500}}
"""

NATS_PATTERN = (
    """
pattern: {{name: nats-kill, type: message-bus}}
interfaces:
  input:
    - {{type: nats, url: "nats://127.0.0.1:{port}", jetstream: true, stream: "{stream}",
        subject: "{subject}", durable: faults, create: true, reconnect_wait: 0.5}}
"""
    + SQLITE_OUT
)

AMQP_PATTERN = (
    """
pattern: {{name: amqp-kill, type: message-bus}}
interfaces:
  input:
    - {{type: amqp, url: "amqp://guest:guest@127.0.0.1:{port}/", queue: "{queue}",
        reconnect_min: 0.2, reconnect_max: 1}}
"""
    + SQLITE_OUT
)


def sqlite_table(tmp: Path) -> Path:
    db = tmp / "out.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (message_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
    return db


@pytest.mark.faults
def test_redis_connection_killed(tmp_path: Path) -> None:
    need_service("Redis", 6379)
    key = f"faults:{uuid.uuid4().hex[:8]}"
    r = redis.Redis(host="127.0.0.1", port=6379)

    def arrived() -> Counter[int]:
        return Counter(json.loads(item)["seq"] for item in r.lrange(key, 0, -1))

    inst = Wireway(tmp_path, REDIS_PATTERN.format(key=key))
    inst.start()
    load = HttpLoad(f"{inst.url}/ingest", workers=2, pause=0.01).start()
    killed = 0
    try:
        load.wait_acked(1000)
        assert inst.proc is not None
        for _ in range(KILLS):
            wait_delivered(arrived, set(), beyond=load.issued - 200, timeout=30)
            ports = [
                c.laddr.port
                for c in psutil.Process(inst.proc.pid).net_connections(kind="tcp")
                if c.raddr and c.raddr.port == 6379
            ]
            killed += sum(int(r.execute_command("CLIENT", "KILL", "ADDR", f"127.0.0.1:{p}")) for p in ports)
            time.sleep(0.8)
        mark = load.issued
        before = load.acked.snapshot()
        _, recovery = wait_delivered(arrived, before, beyond=mark, timeout=60)
        acked = load.stop()
        seen, _ = wait_delivered(arrived, acked)
    finally:
        load.stop()
        inst.stop()
        r.delete(key)
    record(
        "redis_connection_killed",
        f"Redis: wireway's connection killed {KILLS} times (CLIENT KILL, redis list out)",
        acked,
        seen,
        recovery,
        connections_killed=killed,
        duplicates_note="RPUSH done, reply lost with the connection",
    )
    assert killed >= KILLS, "wireway held no Redis connection to kill"
    assert_none_lost(acked, seen)


class Producer:
    """Publishes numbered readings from an event loop of its own (a thread); a seq
    is acknowledged once `send` returns (PubAck, publisher confirm)."""

    def __init__(self) -> None:
        self.acked = Acked()
        self.sent = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def open(self) -> None: ...

    async def send(self, seq: int, body: bytes) -> None: ...

    async def close(self) -> None: ...

    async def _run(self) -> None:
        await self.open()
        deadline = time.monotonic() + 300
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                for _ in range(20):
                    seq, self.sent = self.sent, self.sent + 1
                    try:
                        async with asyncio.timeout(10):
                            await self.send(seq, json.dumps({"seq": seq, "pad": "x" * 32}).encode())
                    except Exception:  # noqa: BLE001 - not acknowledged: not counted
                        continue
                    self.acked.add([seq])
                await asyncio.sleep(0.05)
        finally:
            await self.close()

    def start(self) -> Producer:
        self.thread.start()
        return self

    def stop(self) -> set[int]:
        self._stop.set()
        self.thread.join(30)
        return self.acked.snapshot()


async def drop_stream(name: str) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


async def drop_queue(name: str) -> None:
    import aio_pika

    conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    async with conn:
        channel = await conn.channel()
        await channel.queue_delete(name)


def run_with_cuts(tmp: Path, inst: Wireway, proxy: TcpProxy, producer: Producer, db: Path) -> dict[str, Any]:
    """Start wireway and the producer, cut the proxy KILLS times, then count."""
    inst.start()
    producer.start()
    try:
        seen, _ = wait_delivered(lambda: sqlite_seqs(db), set(), beyond=500, timeout=30)
        assert seen, f"nothing arrived before the first cut:\n{inst.log.read_text()[-2000:]}"
        for _ in range(KILLS):
            proxy.cut()
            time.sleep(1.5)
        mark = producer.sent
        before = producer.acked.snapshot()
        _, recovery = wait_delivered(lambda: sqlite_seqs(db), before, beyond=mark, timeout=60)
        acked = producer.stop()
        seen, _ = wait_delivered(lambda: sqlite_seqs(db), acked)
    finally:
        producer.stop()
        inst.stop()
        proxy.close()
    return {"acked": acked, "seen": seen, "recovery": recovery}


@pytest.mark.faults
def test_nats_connection_cut(tmp_path: Path) -> None:
    need_service("NATS", 4222)
    import nats

    name = f"faults_{uuid.uuid4().hex[:8]}"
    subject = f"faults.{name}"

    class NatsProducer(Producer):
        async def open(self) -> None:
            self.nc = await nats.connect("nats://127.0.0.1:4222")
            self.js = self.nc.jetstream()
            await self.js.add_stream(name=name, subjects=[subject])

        async def send(self, seq: int, body: bytes) -> None:
            await self.js.publish(subject, body, headers={"Nats-Msg-Id": f"seq-{seq}"})

        async def close(self) -> None:
            await self.nc.close()  # the stream stays until wireway has read it all

    proxy = TcpProxy(4222)
    db = sqlite_table(tmp_path)
    inst = Wireway(tmp_path, NATS_PATTERN.format(port=proxy.port, stream=name, subject=subject, db=db))
    producer = NatsProducer()
    # the stream must exist before wireway's consumer is made on it
    producer.start()
    deadline = time.monotonic() + 10
    while not len(producer.acked) and time.monotonic() < deadline:
        time.sleep(0.05)
    producer.start = lambda: producer  # type: ignore[method-assign]
    try:
        out = run_with_cuts(tmp_path, inst, proxy, producer, db)
    finally:
        asyncio.run(drop_stream(name))
    record(
        "nats_connection_cut",
        f"NATS JetStream: wireway's connection cut {KILLS} times (TCP proxy, nats in)",
        out["acked"],
        out["seen"],
        out["recovery"],
        connections_cut=proxy.cuts,
    )
    assert proxy.cuts >= KILLS
    assert_none_lost(out["acked"], out["seen"])
    assert sum(out["seen"].values()) == len(out["seen"])


@pytest.mark.faults
def test_rabbitmq_connection_cut(tmp_path: Path) -> None:
    need_service("RabbitMQ", 5672)
    import aio_pika

    queue = f"faults-{uuid.uuid4().hex[:8]}"

    class AmqpProducer(Producer):
        async def open(self) -> None:
            self.conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
            self.channel = await self.conn.channel(publisher_confirms=True)
            await self.channel.declare_queue(queue, durable=True)

        async def send(self, seq: int, body: bytes) -> None:
            message = aio_pika.Message(
                body, message_id=f"seq-{seq}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            await self.channel.default_exchange.publish(message, routing_key=queue)

        async def close(self) -> None:
            await self.conn.close()  # the queue stays until wireway has read it all

    proxy = TcpProxy(5672)
    db = sqlite_table(tmp_path)
    inst = Wireway(tmp_path, AMQP_PATTERN.format(port=proxy.port, queue=queue, db=db))
    producer = AmqpProducer()
    producer.start()  # the queue must exist before wireway consumes it
    deadline = time.monotonic() + 10
    while not len(producer.acked) and time.monotonic() < deadline:
        time.sleep(0.05)
    producer.start = lambda: producer  # type: ignore[method-assign]
    try:
        out = run_with_cuts(tmp_path, inst, proxy, producer, db)
    finally:
        asyncio.run(drop_queue(queue))
    record(
        "rabbitmq_connection_cut",
        f"RabbitMQ: wireway's connection cut {KILLS} times (TCP proxy, amqp in)",
        out["acked"],
        out["seen"],
        out["recovery"],
        connections_cut=proxy.cuts,
    )
    assert proxy.cuts >= KILLS
    assert_none_lost(out["acked"], out["seen"])
    assert sum(out["seen"].values()) == len(out["seen"])
