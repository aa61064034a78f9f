"""dedupe with a time window: a key is a duplicate only that long, across restarts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from conftest import free_port
from support import engine_from, eventually
from wireway.envelope import Message
from wireway.processors.dedupe import Dedupe, DedupeConfig

BASE = Path(".")


def batch(*ns: int) -> list[Message]:
    return [
        Message(message_id=f"m{n}-{i}", timestamp="2026-01-01T00:00:00Z", payload={"n": n})
        for i, n in enumerate(ns)
    ]


def ns(result: list[Message]) -> list[int]:
    return [m.payload["n"] for m in result]


async def test_window_forgets_a_key_after_its_time() -> None:
    """A key is dropped within the window after its commit and passes again after it."""
    step = Dedupe(DedupeConfig(key="payload.n", window=10), base_dir=BASE)
    now = [1000.0]
    step.clock = lambda: now[0]
    first = await step.process(batch(1, 2, 1))
    assert ns(first.passed) == [1, 2]
    step.committed(first.passed)
    now[0] += 9
    assert ns((await step.process(batch(1, 2, 3))).passed) == [3]
    now[0] += 2
    assert ns((await step.process(batch(1, 2, 3))).passed) == [1, 2, 3]


async def test_window_keeps_at_most_max_keys() -> None:
    """Beyond max_keys the oldest key is forgotten first."""
    step = Dedupe(DedupeConfig(key="payload.n", window=60, max_keys=2), base_dir=BASE)
    step.committed(batch(1, 2, 3))
    assert ns((await step.process(batch(1, 2, 3))).passed) == [1]


async def test_window_state_survives_a_restart(tmp_path: Path) -> None:
    """Keys committed before stop() are still duplicates after the next start(); expired ones are not."""
    now = [5000.0]

    async def started() -> Dedupe:
        step = Dedupe(DedupeConfig(key="payload.n", window=30), base_dir=BASE)
        step.data_dir, step.pattern, step.clock = tmp_path, "p", lambda: now[0]
        await step.start()
        return step

    step = await started()
    step.committed(batch(1))
    now[0] += 20
    step.committed(batch(2))
    await step.stop()
    assert (tmp_path / "state" / "p.dedupe.db").exists()
    now[0] += 15  # 1 is 35 s old: expired; 2 is 15 s old
    step = await started()
    assert ns((await step.process(batch(1, 2))).passed) == [1]
    await step.stop()


def pattern(port: int, out: Path) -> str:
    return f"""
pattern: {{name: once, type: streaming}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", ack: true}}
  output:
    - {{type: file, address: "{out}", format: jsonl, payload_only: true}}
processors:
  - dedupe: {{key: "payload.order", window: 3600}}
"""


async def send(port: int, lines: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(lines)
    await writer.drain()
    ack = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return ack


async def test_dedupe_window_across_an_engine_restart(tmp_path: Path) -> None:
    """tcp -> dedupe(window) -> file: orders seen before a restart are still dropped after it."""
    out = tmp_path / "out.jsonl"

    def lines() -> list[int]:
        return [json.loads(x)["order"] for x in out.read_text().splitlines()] if out.exists() else []

    port = free_port()
    async with engine_from(tmp_path, pattern(port, out)):
        assert (await send(port, b'{"order": 1}\n{"order": 2}\n{"order": 1}\n')).startswith(b"ok 2")
        await eventually(lambda: lines() == [1, 2])
    port = free_port()
    async with engine_from(tmp_path, pattern(port, out)):
        assert (await send(port, b'{"order": 2}\n{"order": 3}\n{"order": 1}\n')).startswith(b"ok 1")
        await eventually(lambda: lines() == [1, 2, 3])


@given(st.lists(st.tuples(st.sampled_from([0.0, 1.0, 2.5, 5.0]), st.sampled_from("abc")), max_size=40))
async def test_window_agrees_with_a_straightforward_rule(arrivals: list[tuple[float, str]]) -> None:
    """One message per batch, committed: it passes exactly when its key was not accepted in the last window."""
    step = Dedupe(DedupeConfig(key="payload.n", window=5), base_dir=BASE)
    now = [0.0]
    step.clock = lambda: now[0]
    accepted: dict[str, float] = {}
    for gap, key in arrivals:
        now[0] += gap
        msg = Message(message_id="x", timestamp="2026-01-01T00:00:00Z", payload={"n": key})
        passed = (await step.process([msg])).passed
        expected = key not in accepted or accepted[key] <= now[0] - 5
        assert bool(passed) == expected
        if passed:
            accepted[key] = now[0]
            step.committed(passed)
