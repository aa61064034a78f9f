"""throttle: at most N per interval and key, by waiting (default) or dropping."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from conftest import free_port
from support import engine_from, eventually
from wireway.envelope import Message
from wireway.observability.metrics import REGISTRY
from wireway.processors.throttle import Throttle, ThrottleConfig

BASE = Path(".")


def batch(*keys: str) -> list[Message]:
    return [
        Message(message_id=f"m{i}", timestamp="2026-01-01T00:00:00Z", payload={"k": k})
        for i, k in enumerate(keys)
    ]


def counted(pattern: str, outcome: str) -> float:
    labels = {"pattern": pattern, "component": "throttle", "outcome": outcome}
    return REGISTRY.get_sample_value("wireway_messages_total", labels) or 0.0


async def test_throttle_drop_keeps_each_key_under_its_limit() -> None:
    """drop: two per key pass, the rest of each key is dropped and counted."""
    step = Throttle(ThrottleConfig(limit=2, interval=60, key="payload.k", drop=True), base_dir=BASE)
    step.pattern = "unit-drop"
    result = await step.process(batch("a", "a", "b", "a", "b", "b", "c"))
    assert [m.payload["k"] for m in result.passed] == ["a", "a", "b", "b", "c"]
    assert result.failed == []
    assert counted("unit-drop", "throttled") == 2


async def test_throttle_waits_for_the_turn_of_the_last_message() -> None:
    """By default the batch over the limit is held for about an interval, then passes whole."""
    step = Throttle(ThrottleConfig(limit=2, interval=0.3), base_dir=BASE)
    step.pattern = "unit-wait"
    t0 = time.monotonic()
    result = await step.process(batch("a", "b", "c"))
    assert len(result.passed) == 3
    assert time.monotonic() - t0 >= 0.25
    assert counted("unit-wait", "delayed") == 1


async def test_throttle_key_error_fails_the_message() -> None:
    """A key that cannot be evaluated sends the message to the DLQ with the reason."""
    step = Throttle(ThrottleConfig(limit=1, key="payload.missing"), base_dir=BASE)
    result = await step.process(batch("a"))
    assert result.passed == []
    assert result.failed[0][1][0].startswith("throttle: cannot evaluate key")


@given(
    st.integers(1, 4),
    st.lists(st.tuples(st.sampled_from("ab"), st.floats(0, 3, allow_nan=False)), max_size=40),
)
async def test_throttle_never_passes_more_than_the_limit_in_any_interval(
    limit: int, arrivals: list[tuple[str, float]]
) -> None:
    """drop mode: in every window of one interval, at most `limit` messages of a key pass."""
    step = Throttle(ThrottleConfig(limit=limit, interval=1.0, key="payload.k", drop=True), base_dir=BASE)
    now = [0.0]
    step.clock = lambda: now[0]
    passed: dict[str, list[float]] = {"a": [], "b": []}
    for key, gap in arrivals:
        now[0] += gap
        result = await step.process(batch(key))
        passed[key] += [now[0]] * len(result.passed)
    for times in passed.values():
        for i, t in enumerate(times):
            assert sum(1 for u in times[: i + 1] if u > t - 1.0) <= limit


def pattern(port: int, out: Path, name: str, drop: bool) -> str:
    return f"""
pattern: {{name: {name}, type: streaming}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", ack: true}}
  output:
    - {{type: file, address: "{out}", format: jsonl, payload_only: true}}
processors:
  - throttle: {{limit: 5, interval: 0.5, key: "payload.dev", drop: {str(drop).lower()}}}
"""


async def send(port: int, lines: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(lines)
    await writer.drain()
    ack = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return ack


async def test_throttle_delays_without_loss_end_to_end(tmp_path: Path) -> None:
    """tcp -> throttle -> file: 12 readings of one device all arrive, 7 of them held back."""
    port, out = free_port(), tmp_path / "out.jsonl"
    lines = b"".join(b'{"dev": "d1", "n": %d}\n' % i for i in range(12))
    async with engine_from(tmp_path, pattern(port, out, "throttle-wait", drop=False)):
        t0 = time.monotonic()
        assert (await send(port, lines)).startswith(b"ok 12")
        assert time.monotonic() - t0 >= 0.45  # the sender waited: backpressure
        await eventually(lambda: out.exists() and len(out.read_text().splitlines()) == 12)
    assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == list(range(12))
    assert counted("throttle-wait", "delayed") == 7
    assert counted("throttle-wait", "throttled") == 0


async def test_throttle_drop_mode_counts_end_to_end(tmp_path: Path) -> None:
    """drop: true: five readings per device pass, the rest are counted as throttled."""
    port, out = free_port(), tmp_path / "out.jsonl"
    lines = b"".join(b'{"dev": "d%d", "n": %d}\n' % (i % 2, i) for i in range(16))
    async with engine_from(tmp_path, pattern(port, out, "throttle-drop", drop=True)):
        assert (await send(port, lines)).startswith(b"ok 10")
        await eventually(lambda: out.exists() and len(out.read_text().splitlines()) == 10)
    assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == list(range(10))
    assert counted("throttle-drop", "throttled") == 6
