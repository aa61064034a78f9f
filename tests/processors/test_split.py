"""split: one message per array element, ids derived from the parent's."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import free_port
from support import engine_from, eventually
from wireway.envelope import Message, Metadata, stable_id
from wireway.errors import ConfigError
from wireway.processors.split import Split, SplitConfig

BASE = Path(".")


def parent(payload: object, message_id: str = "p-1") -> Message:
    return Message(
        message_id=message_id,
        timestamp="2026-01-01T00:00:00Z",
        payload=payload,
        source="s",
        metadata=Metadata(priority="high", ttl=60),
    )


async def test_split_payload_into_children() -> None:
    """Each element becomes a message with an id from (parent id, index) and the parent as correlation."""
    step = Split(SplitConfig(), base_dir=BASE)
    result = await step.process([parent([{"n": 1}, {"n": 2}, 3])])
    assert result.failed == []
    assert [m.payload for m in result.passed] == [{"n": 1}, {"n": 2}, 3]
    assert [m.message_id for m in result.passed] == [stable_id("p-1", i) for i in range(3)]
    for child in result.passed:
        assert child.metadata.correlation_id == "p-1"
        assert child.metadata.priority == "high"
        assert child.metadata.ttl == 60
        assert child.timestamp == "2026-01-01T00:00:00Z"
        assert child.source == "s"
        assert child.message_type == "data"


async def test_split_by_path_with_a_message_type() -> None:
    """A CEL path picks the array; message_type names the children."""
    step = Split(SplitConfig(path="payload.readings", message_type="reading"), base_dir=BASE)
    result = await step.process([parent({"readings": [1, 2]}), parent({"readings": []}, "p-2")])
    assert [m.payload for m in result.passed] == [1, 2]
    assert {m.message_type for m in result.passed} == {"reading"}


async def test_split_not_an_array_per_on_error() -> None:
    """A missing path or a non-array fails the message (dlq), is dropped, or passes whole."""
    batch = [parent({"readings": 5}), parent({}, "p-2")]
    failed = (await Split(SplitConfig(path="payload.readings"), base_dir=BASE).process(batch)).failed
    assert [m.message_id for m, _ in failed] == ["p-1", "p-2"]
    assert "is not an array (got int)" in failed[0][1][0]
    assert "cannot evaluate" in failed[1][1][0]
    dropped = await Split(SplitConfig(path="payload.readings", on_error="drop"), base_dir=BASE).process(batch)
    assert dropped.passed == dropped.failed == []
    whole = await Split(SplitConfig(path="payload.readings", on_error="pass"), base_dir=BASE).process(batch)
    assert whole.passed == batch


def test_split_bad_path_is_a_config_error() -> None:
    """A path that does not compile is refused at its key."""
    with pytest.raises(ConfigError) as info:
        Split(SplitConfig(path="payload.("), base_dir=BASE)
    assert info.value.path == "path"


@given(st.text(min_size=1, max_size=30), st.lists(st.integers(), max_size=20))
async def test_split_is_deterministic(parent_id: str, items: list[int]) -> None:
    """Splitting the same parent twice gives the same ids, distinct within the parent."""
    step = Split(SplitConfig(), base_dir=BASE)
    one = await step.process([parent(items, parent_id)])
    two = await step.process([parent(items, parent_id)])
    ids = [m.message_id for m in one.passed]
    assert ids == [m.message_id for m in two.passed]
    assert len(set(ids)) == len(items)


async def test_split_redelivery_gives_the_same_ids_end_to_end(tmp_path: Path) -> None:
    """tcp -> split -> file: a parent sent twice is split into the same child ids both times."""
    port = free_port()
    out = tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: splitter, type: streaming}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", ack: true}}
  output:
    - {{type: file, address: "{out}", format: jsonl}}
processors:
  - split: payload.items
  - filter: "payload.n != 2"
"""
    envelope = {
        "messageId": "order-7",
        "messageType": "data",
        "payload": {"items": [{"n": 1}, {"n": 2}, {"n": 3}]},
    }
    line = json.dumps(envelope).encode() + b"\n"
    async with engine_from(tmp_path, text):
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(line)
            await writer.drain()
            assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"ok 2")
            writer.close()
        await eventually(lambda: out.exists() and len(out.read_text().splitlines()) == 4)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["payload"]["n"] for r in rows] == [1, 3, 1, 3]
    ids = [r["messageId"] for r in rows]
    assert ids[:2] == ids[2:] == [stable_id("order-7", 0), stable_id("order-7", 2)]
    assert {r["metadata"]["correlationId"] for r in rows} == {"order-7"}
