"""Delivery through a real HTTP peer: retries, the breaker, the DLQ, TTL, priority, backpressure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from conftest import free_port
from support import Sink, base_url, engine_from, eventually
from wireway.envelope import Message
from wireway.processors.base import Processor, StepResult
from wireway.registry import register_processor
from wireway.runtime.dlq import DlqAdmin


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


def pattern(sink: Sink, *, retries: int = 3, extra: str = "", buffer_size: int = 1000, out: str = "") -> str:
    return f"""
pattern: {{name: hooks, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /in}}
  output:
    - {{type: http_client, address: "{sink.url}", payload_only: true, name: hook, timeout: 2{out}}}
settings: {{retries: {retries}, backoff_base: 0.01, backoff_max: 0.05, breaker_threshold: 3,
           breaker_timeout: 0.3, buffer_size: {buffer_size}, batch_size: 50, timeout: 5{extra}}}
"""


async def post(engine: object, body: object, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:  # type: ignore[arg-type]
        return await c.post("/in", json=body, **kw)  # type: ignore[arg-type]


async def test_5xx_is_retried_then_delivered(tmp_path: Path, sink: Sink) -> None:
    """Two 503s then a 200: delivered once, nothing in the DLQ."""
    sink.statuses = [503, 503]
    async with engine_from(tmp_path, pattern(sink)) as engine:
        r = await post(engine, {"n": 1})
        assert r.status_code == 202
        await eventually(lambda: sink.received == [{"n": 1}])
        route = engine.runners[0].routes[0]
        # the sink has it before wireway reads the 200
        await eventually(lambda: route.delivered == 1)
        assert engine.sqlite is not None
        assert engine.sqlite.dlq_depth("hooks") == 0
    assert sink.requests == 3


async def test_4xx_goes_straight_to_the_dlq(tmp_path: Path, sink: Sink) -> None:
    """A 404 is not retried; the DLQ keeps the message with the reason."""
    sink.statuses = [404]
    async with engine_from(tmp_path, pattern(sink)) as engine:
        r = await post(engine, {"n": 2})
        msg_id = r.json()["ids"][0]
        await eventually(lambda: engine.sqlite is not None and engine.sqlite.dlq_depth("hooks") == 1)
        assert sink.requests == 1
    row = DlqAdmin(tmp_path / "data" / "buffer.db").show(msg_id)
    assert row is not None
    assert row["reason"].startswith("HTTP 404")
    assert row["attempts"] == 1
    assert row["queue"] == "hooks/hook"


async def test_retries_exhausted_then_redrive(tmp_path: Path, sink: Sink) -> None:
    """After `retries` the message is dead-lettered; a redrive while running delivers it."""
    sink.default = 500
    async with engine_from(tmp_path, pattern(sink, retries=2)) as engine:
        r = await post(engine, {"n": 3})
        msg_id = r.json()["ids"][0]
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("hooks") == 1)
        assert sink.requests == 3  # first attempt + 2 retries
        admin = DlqAdmin(tmp_path / "data" / "buffer.db")
        row = admin.show(msg_id)
        assert row is not None
        assert row["attempts"] == 3
        assert "HTTP 500" in row["reason"]
        sink.default = 200
        assert admin.redrive(pattern="hooks") == 1
        await eventually(lambda: sink.received == [{"n": 3}], timeout=10)
        await eventually(lambda: engine.sqlite.dlq_depth("hooks") == 0)


async def test_breaker_opens_and_closes(tmp_path: Path, sink: Sink) -> None:
    """Connection failures open the breaker; messages wait; a probe closes it."""
    sink.close()
    async with engine_from(tmp_path, pattern(sink, retries=100)) as engine:
        route = engine.runners[0].routes[0]
        for n in range(5):
            assert (await post(engine, {"n": n})).status_code == 202
        await eventually(lambda: route.breaker.state in ("open", "half-open"))
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:
            status = (await c.get("/status")).json()
            out = status["patterns"][0]["outputs"][0]
            assert out["breaker"] in ("open", "half-open")
            assert out["buffer_depth"] == 5
            health = (await c.get("/health")).json()
            assert health["status"] == "degraded"
            assert health["services"]["hooks/hook"] == "down"
        revived = Sink()
        try:
            # the peer comes back on another port: point the output at it
            route.output.config = type(route.output.config)(address=revived.url, payload_only=True, timeout=2)
            await eventually(lambda: len(revived.received) == 5, timeout=15)
            await eventually(lambda: route.breaker.state == "closed")
        finally:
            revived.close()


async def test_expired_ttl_goes_to_dlq(tmp_path: Path, sink: Sink) -> None:
    """A message whose TTL ran out before delivery is dead-lettered as `expired`."""
    env = {
        "messageId": "ttl-1",
        "messageType": "data",
        "payload": {"n": 1},
        "timestamp": "2020-01-01T00:00:00Z",
        "metadata": {"ttl": 5},
    }
    async with engine_from(tmp_path, pattern(sink)) as engine:
        assert (await post(engine, env)).status_code == 202
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("hooks") == 1)
    row = DlqAdmin(tmp_path / "data" / "buffer.db").show("ttl-1")
    assert row is not None
    assert row["reason"] == "expired"
    assert sink.received == []


async def test_priority_high_before_normal_before_low(tmp_path: Path, sink: Sink) -> None:
    """Messages queued while the output is down leave high first, then normal, then low."""
    sink.close()
    async with engine_from(tmp_path, pattern(sink, retries=1000, out=", concurrency: 1")) as engine:
        route = engine.runners[0].routes[0]
        for prio in ("low", "normal", "high", "low", "high"):
            env = {
                "messageId": f"{prio}-{route.queue.depth}",
                "messageType": "data",
                "payload": {"p": prio},
                "metadata": {"priority": prio},
            }
            assert (await post(engine, env)).status_code == 202
        await eventually(lambda: route.queue.depth == 5)
        revived = Sink()
        try:
            route.output.config = type(route.output.config)(
                address=revived.url, payload_only=True, timeout=2, concurrency=1
            )
            await eventually(lambda: len(revived.received) == 5, timeout=15)
            assert [r["p"] for r in revived.received] == ["high", "high", "normal", "low", "low"]
        finally:
            revived.close()


async def test_full_buffer_answers_503_with_retry_after(tmp_path: Path, sink: Sink) -> None:
    """When the buffer is full the http input answers 503 with Retry-After; nothing is dropped."""
    sink.close()
    async with engine_from(tmp_path, pattern(sink, retries=1000, buffer_size=3)) as engine:
        codes = [(await post(engine, {"n": n})).status_code for n in range(3)]
        assert codes == [202, 202, 202]
        r = await post(engine, {"n": 4})
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) >= 1
        assert engine.runners[0].routes[0].queue.depth == 3
        # refused before the body is read: not even decoded (a 400 would mean it was)
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:
            r = await c.post("/in", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 503
        assert engine.runners[0].full()


@pytest.mark.parametrize("parallel", [1, 3])
async def test_parallel_keeps_that_many_batches_in_flight(tmp_path: Path, sink: Sink, parallel: int) -> None:
    """`parallel: N` on an output: up to N batches at the peer at once, all delivered."""
    sink.delay = 0.3
    text = pattern(sink, out=f", parallel: {parallel}").replace("batch_size: 50", "batch_size: 1")
    async with engine_from(tmp_path, text) as engine:
        assert (await post(engine, [{"n": n} for n in range(6)])).status_code == 202
        await eventually(lambda: len(sink.received) == 6)
    assert sorted(x["n"] for x in sink.received) == list(range(6))
    assert sink.most_in_flight == parallel


async def test_an_output_can_have_its_own_batch_size(tmp_path: Path, sink: Sink) -> None:
    """`batch_size` on an output overrides the pattern's settings.batch_size (50 here)."""
    async with engine_from(tmp_path, pattern(sink, out=", batch: true, batch_size: 2")) as engine:
        assert (await post(engine, [{"n": n} for n in range(5)])).status_code == 202
        await eventually(lambda: sum(len(b) for b in sink.received) == 5)
    assert [[x["n"] for x in b] for b in sink.received] == [[0, 1], [2, 3], [4]]


async def test_linger_waits_for_a_fuller_batch(tmp_path: Path, sink: Sink) -> None:
    """`linger` on an output: messages arriving within it go out as one batch."""
    async with engine_from(tmp_path, pattern(sink, out=", batch: true, linger: 0.5")) as engine:
        assert (await post(engine, {"n": 0})).status_code == 202
        assert (await post(engine, [{"n": 1}, {"n": 2}])).status_code == 202
        await eventually(lambda: sum(len(b) for b in sink.received) == 3)
    assert [[x["n"] for x in b] for b in sink.received] == [[0, 1, 2]]


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ("linger: -1", "linger: expected seconds from 0 to 60"),
        ("batch_size: 0", "batch_size: expected a positive integer"),
        ("parallel: 0", "parallel: expected an integer from 1 to 16"),
    ],
)
def test_output_delivery_options_are_checked(tmp_path: Path, option: str, error: str) -> None:
    from wireway.config.loader import load_pattern

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "pattern: {name: c}\ninterfaces:\n  input: [{type: http, address: /c}]\n"
        f"  output:\n    - {{type: stdout, {option}}}\n"
    )
    pattern, errors = load_pattern(bad)
    assert pattern is None
    assert [str(e) for e in errors] == [f"{bad}:5 interfaces.output[0].{error}"]


async def test_a_burst_past_keep_in_memory_waits_in_the_file(tmp_path: Path, sink: Sink) -> None:
    """HTTP fills the whole buffer_size; items past keep_in_memory hold no message in
    memory and are read back from the buffer file when delivered, in order."""
    sink.delay = 1.0  # the first delivery is still under way while the burst arrives
    text = pattern(sink, buffer_size=30, extra=", keep_in_memory: 5").replace(
        "batch_size: 50", "batch_size: 1"
    )
    async with engine_from(tmp_path, text) as engine:
        route = engine.runners[0].routes[0]
        assert (await post(engine, {"n": 0})).status_code == 202
        await eventually(lambda: sink.in_flight == 1)
        for n in range(3):
            body = [{"n": 1 + 10 * n + i} for i in range(10) if 1 + 10 * n + i < 30]
            assert (await post(engine, body)).status_code == 202
        assert (await post(engine, {"n": 99})).status_code == 503  # the buffer is full
        queued = [it for lane in route.queue.lanes for it in lane]
        assert len(queued) == 29
        assert sum(it.message is None for it in queued) == 29 - 5
        sink.delay = 0
        await eventually(lambda: len(sink.received) == 30, timeout=15)
    assert [r["n"] for r in sink.received] == list(range(30))


async def test_outputs_get_a_message_while_its_outbox_commit_is_under_way(tmp_path: Path, sink: Sink) -> None:
    """The sender waits for the outbox commit; the outputs need not (its fsync is not
    part of their latency), unless their queue is longer than keep_in_memory."""
    import asyncio
    import threading

    async with engine_from(tmp_path, pattern(sink)) as engine:
        store = engine.runners[0].store
        release = threading.Event()
        blocked = asyncio.ensure_future(store._submit(lambda conn: release.wait(10)))  # type: ignore[attr-defined]
        await asyncio.sleep(0.1)  # the writer is now busy with that op
        sent = asyncio.ensure_future(post(engine, {"n": 1}))
        await eventually(lambda: len(sink.received) == 1)
        assert not sent.done()  # delivered, but the sender is not acknowledged yet
        release.set()
        assert (await sent).status_code == 202
        await blocked


class EchoConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of the test step `echo` (none)."""


@register_processor("test_echo", config=EchoConfig)
class Echo(Processor):
    """Passes each message and emits a `note` about it (a step that creates messages)."""

    def __init__(self, config: EchoConfig, *, base_dir: Path) -> None:
        self.committed_ids: list[str] = []

    async def process(self, batch: list[Message]) -> StepResult:
        notes = [
            Message(
                message_id=f"note-{msg.message_id}",
                timestamp=msg.timestamp,
                payload={"about": msg.payload},
                message_type="note",
            )
            for msg in batch
        ]
        return StepResult(batch, emitted=notes)

    def committed(self, messages: list[Message]) -> None:
        self.committed_ids += [msg.message_id for msg in messages]


def echo_pattern(sink: Sink, dead: int) -> str:
    return f"""
pattern: {{name: echo}}
interfaces:
  input:
    - {{type: http, address: /in}}
  output:
    - {{type: http_client, name: data, when: messageType == "data", address: "http://127.0.0.1:{dead}/x",
       payload_only: true, timeout: 1}}
    - {{type: http_client, name: notes, when: messageType == "note", address: "{sink.url}", payload_only: true}}
processors:
  - test_echo: {{}}
settings: {{retries: 1000, backoff_base: 0.01, backoff_max: 0.05, timeout: 2}}
"""


async def test_a_step_emitting_messages_is_routed_and_durable(tmp_path: Path, sink: Sink) -> None:
    """Emitted messages skip the later steps, go only where `when:` sends them, and are
    in the outbox with their batch: a restart delivers the ones left (the input's own
    message waits for its dead peer meanwhile)."""
    dead = free_port()
    sink.default = 503  # the notes' peer refuses for now
    async with engine_from(tmp_path, echo_pattern(sink, dead)) as engine:
        r = await post(engine, {"n": 1})
        assert r.status_code == 202
        (message_id,) = r.json()["ids"]
        await eventually(lambda: sink.requests >= 1)
        (step,) = engine.runners[0].steps
        assert step.committed_ids == [message_id]  # type: ignore[attr-defined]  # not the note
        queues = {route.iface.name: route.queue.depth for route in engine.runners[0].routes}
        assert queues == {"data": 1, "notes": 1}
    sink.default = 200
    async with engine_from(tmp_path, echo_pattern(sink, dead)) as engine:
        await eventually(lambda: sink.received == [{"about": {"n": 1}}])
        assert {route.iface.name: route.queue.depth for route in engine.runners[0].routes}["data"] == 1


async def test_debug_lines_name_each_message(tmp_path: Path, sink: Sink) -> None:
    """At DEBUG, one line per accepted and per delivered message with its messageId and
    correlationId."""
    from structlog.testing import capture_logs

    async with engine_from(tmp_path, pattern(sink)) as engine:
        with capture_logs() as lines:
            r = await post(engine, {"n": 1})
            assert r.status_code == 202
            (message_id,) = r.json()["ids"]
            await eventually(lambda: any(line["event"] == "delivered" for line in lines))
    found = [(line["event"], line["message_id"]) for line in lines if "correlation_id" in line]
    # in either order: outputs may have a message before its outbox commit is done
    assert sorted(found) == [("accepted", message_id), ("delivered", message_id)]
