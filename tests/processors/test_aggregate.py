"""aggregate: results per key and window, emitted when the window ends, kept across restarts."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import free_port
from support import engine_from, eventually
from wireway.envelope import Message
from wireway.processors.aggregate import Aggregate, AggregateConfig, iso

BASE = Path(".")


def batch(*pairs: tuple[str, object]) -> list[Message]:
    return [
        Message(message_id=f"m{i}", timestamp="2026-01-01T00:00:00Z", payload={"dev": k, "t": v})
        for i, (k, v) in enumerate(pairs)
    ]


def step_at(now: list[float], **options: object) -> Aggregate:
    step = Aggregate(msgspec.convert(options, AggregateConfig), base_dir=BASE)
    step.pattern = "agg"
    step.clock = lambda: now[0]
    return step


async def test_tumbling_window_closes_on_the_next_batch() -> None:
    """A window's results come with the first batch after its end; inputs pass by default."""
    now = [100.0]
    step = step_at(now, window=10, key="payload.dev", field="payload.t")
    first = await step.process(batch(("a", 1), ("a", 5), ("b", 2.5), ("a", 3)))
    assert len(first.passed) == 4
    assert first.emitted == []
    now[0] = 110.0
    second = await step.process(batch(("a", 7)))
    results = {m.payload["key"]: m.payload for m in second.emitted}
    assert results["a"] == {
        "key": "a",
        "start": "1970-01-01T00:01:40.000Z",
        "end": "1970-01-01T00:01:50.000Z",
        "count": 3,
        "sum": 9,
        "min": 1,
        "max": 5,
        "mean": 3,
        "last": 3,
    }
    assert results["b"]["count"] == 1
    assert {m.message_type for m in second.emitted} == {"aggregate"}


async def test_result_ids_are_stable_and_distinct() -> None:
    """The same key and window give the same id in another instance; another window another id."""
    ids = []
    for _ in range(2):
        now = [100.0]
        step = step_at(now, window=10, key="payload.dev")
        await step.process(batch(("a", 1)))
        now[0] = 115
        await step.process(batch(("a", 1)))
        now[0] = 125
        ids.append([m.message_id for m in (await step.process([])).emitted])
    assert ids[0] == ids[1]
    assert len(ids[0]) == 1
    now = [100.0]
    step = step_at(now, window=10, key="payload.dev")
    await step.process(batch(("a", 1)))
    now[0] = 110
    assert [m.message_id for m in (await step.process([])).emitted] != ids[0]


async def test_drop_inputs_and_bad_values() -> None:
    """inputs: drop keeps only results; a non-number is skipped, or failed with on_error: dlq."""
    now = [0.0]
    step = step_at(now, window=5, field="payload.t", functions=["sum"], inputs="drop")
    result = await step.process(batch(("a", 1), ("a", "x"), ("a", True), ("a", 2)))
    assert result.passed == result.failed == []
    now[0] = 5
    (only,) = (await step.process([])).emitted
    assert only.payload == {"start": "1970-01-01T00:00:00.000Z", "end": "1970-01-01T00:00:05.000Z", "sum": 3}
    dlq = step_at(now, window=5, field="payload.t", on_error="dlq")
    result = await dlq.process(batch(("a", 1), ("a", "x")))
    assert [m.payload["t"] for m in result.passed] == [1]
    assert "is not a number" in result.failed[0][1][0]


def test_options_are_checked() -> None:
    """A function other than count needs a field; slide must fit the window."""
    with pytest.raises(msgspec.ValidationError, match=r"\$\.field"):
        msgspec.convert({"window": 5, "functions": ["sum"]}, AggregateConfig)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.slide"):
        msgspec.convert({"window": 5, "slide": 6}, AggregateConfig)


def straightforward(
    events: list[tuple[float, str, int]], window: float, slide: float
) -> dict[tuple[str, float], list[int]]:
    """Every window start k*slide with start <= t < start + window, by hand."""
    groups: dict[tuple[str, float], list[int]] = {}
    for t, key, value in events:
        k = math.floor(t / slide)
        while k * slide + window > t:
            if k * slide <= t:
                groups.setdefault((key, k * slide), []).append(value)
            k -= 1
    return groups


@given(
    st.sampled_from([(1.0, 1.0), (1.0, 0.5), (2.0, 0.5)]),
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.sampled_from("xy"), st.integers(-50, 50)),
        max_size=30,
    ),
)
async def test_results_equal_a_straightforward_computation(
    sizes: tuple[float, float], arrivals: list[tuple[float, str, int]]
) -> None:
    """Whatever the arrivals, the emitted results are those of the windows computed by hand."""
    window, slide = sizes
    now = [0.0]
    step = step_at(now, window=window, slide=slide, key="payload.dev", field="payload.t")
    events, emitted = [], []
    for gap, key, value in arrivals:
        now[0] += gap
        events.append((now[0], key, value))
        emitted += (await step.process(batch((key, value)))).emitted
    now[0] += 10
    emitted += (await step.process([])).emitted
    got = {(m.payload["key"], m.payload["start"]): m.payload for m in emitted}
    expected = straightforward(events, window, slide)
    assert len(got) == len(emitted) == len(expected)
    for (key, start), values in expected.items():
        p = got[(key, iso(start))]
        assert (p["count"], p["sum"], p["min"], p["max"], p["last"]) == (
            len(values),
            sum(values),
            min(values),
            max(values),
            values[-1],
        )
        assert p["mean"] == pytest.approx(sum(values) / len(values))


async def test_open_windows_survive_a_restart_and_the_timer_closes_them(tmp_path: Path) -> None:
    """An open window written at commit is taken back by the next start; its timer publishes it."""
    now = [1000.0]
    step = step_at(now, window=60, key="payload.dev")
    step.data_dir = tmp_path
    await step.start()
    result = await step.process(batch(("a", 1), ("a", 2)))
    step.committed(result.passed)
    await step.stop()
    published: list[Message] = []

    async def publish(msgs: list[Message]) -> None:
        published.extend(msgs)

    again = step_at(now, window=60, key="payload.dev")
    again.data_dir, again.publish = tmp_path, publish
    await again.start()
    assert next(iter(again.open.values())).count == 2
    now[0] = 1060.0
    await eventually(lambda: len(published) == 1, timeout=5)
    assert published[0].payload["count"] == 2
    await again.stop()
    third = step_at(now, window=60, key="payload.dev")
    third.data_dir = tmp_path
    await third.start()
    assert third.open == {}  # the published window was removed from the file
    await third.stop()


def pattern(port: int, out: Path) -> str:
    return f"""
pattern: {{name: windows, type: streaming}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", ack: true}}
  output:
    - {{type: file, address: "{out}", format: jsonl}}
processors:
  - aggregate: {{window: 2, key: "payload.dev", field: "payload.t", functions: [count, max], inputs: drop, message_type: summary}}
"""


async def test_window_across_an_engine_restart_closed_by_the_timer(tmp_path: Path) -> None:
    """tcp -> aggregate -> file: readings before a restart are in the result the timer emits after it."""
    out = tmp_path / "out.jsonl"
    # start early in a window, so that it is still open when the first engine stops
    await asyncio.sleep(2 - time.time() % 2)
    port = free_port()
    async with engine_from(tmp_path, pattern(port, out)):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b'{"dev": "d1", "t": 3}\n{"dev": "d1", "t": 9}\n{"dev": "d2", "t": 4}\n')
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"ok 0")
        writer.close()
    assert not out.exists() or out.read_text() == ""  # still open when the engine stopped
    port = free_port()
    async with engine_from(tmp_path, pattern(port, out)):
        await eventually(lambda: out.exists() and len(out.read_text().splitlines()) >= 2)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    by_key = {r["payload"]["key"]: r for r in rows}
    assert len(rows) == 2
    assert by_key["d1"]["payload"]["count"] == 2
    assert by_key["d1"]["payload"]["max"] == 9
    assert by_key["d2"]["payload"]["count"] == 1
    assert {r["messageType"] for r in rows} == {"summary"}
