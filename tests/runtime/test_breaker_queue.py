"""The breaker's state machine and the queue's priority lanes."""

from __future__ import annotations

from wireway.envelope import Message, Metadata
from wireway.runtime.breaker import Breaker
from wireway.runtime.queue import OutputQueue
from wireway.runtime.store import Item


def test_breaker_cycle() -> None:
    """closed -> open after the threshold -> half-open after the timeout -> closed on success."""
    b = Breaker(threshold=3, timeout=5)
    for _ in range(2):
        b.failure(now=0)
    assert b.state == "closed"
    b.failure(now=0)
    assert b.state == "open"
    assert b.wait(now=1) == 4
    assert b.wait(now=5.1) == 0
    assert b.state == "half-open"
    b.failure(now=6)
    assert b.state == "open"
    assert b.timeout == 10  # the probe failed: the wait grows
    assert b.wait(now=16.5) == 0
    b.success()
    assert (b.state, b.timeout, b.failures) == ("closed", 5, 0)


def item(i: int, prio: str) -> Item:
    return Item(i, "q", Message(str(i), "2026-01-01T00:00:00Z", i, metadata=Metadata(priority=prio)))  # type: ignore[arg-type]


async def test_queue_priority_and_room() -> None:
    """take() serves high, normal, low; room clears at capacity and returns on done()."""
    q = OutputQueue("q", capacity=4)
    q.put([item(1, "low"), item(2, "normal"), item(3, "high"), item(4, "normal")])
    assert not q.room.is_set()
    batch = q.take(3)
    assert [it.id for it in batch] == [3, 2, 4]
    assert q.depth == 4
    q.retry(batch[2:])
    assert [it.id for it in q.take(10)] == [4, 1]
    q.done(4)
    assert q.depth == 0
    assert q.room.is_set()


def test_soft_capacity_is_what_stays_in_memory() -> None:
    from wireway.runtime.queue import OutputQueue

    assert OutputQueue("q", capacity=100, keep=10).soft_capacity == 10
    assert OutputQueue("q", capacity=5, keep=10).soft_capacity == 5
    assert OutputQueue("q", capacity=100).soft_capacity == 100  # memory buffer: all of it
