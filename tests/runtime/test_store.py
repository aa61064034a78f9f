"""The Store contract both buffers keep (the SQLite outbox and the memory store), and
what only the memory store does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_support import letter, msg

from wireway.runtime.memory import MemoryStore
from wireway.runtime.outbox import SqliteStore
from wireway.runtime.store import DeadLetter, Item, Store, StoreError


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "buffer.db"


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, db: Path) -> AsyncIterator[Store]:
    s: Store = SqliteStore(db) if request.param == "sqlite" else MemoryStore()
    await s.open()
    yield s
    await s.close()


async def test_enqueue_assigns_unique_increasing_ids(store: Store) -> None:
    items = await store.enqueue([("orders/a", msg(1)), ("orders/b", msg(1)), ("orders/a", msg(2))])
    more = await store.enqueue([("orders/a", msg(3))])
    ids = [it.id for it in items + more]
    assert ids == sorted(set(ids))
    assert [(it.queue, it.message, it.attempts) for it in items] == [
        ("orders/a", msg(1), 0),
        ("orders/b", msg(1), 0),
        ("orders/a", msg(2), 0),
    ]
    assert await store.enqueue([]) == []
    await store.ack([])
    await store.ack([items[0].id])


async def test_dead_letters_are_counted_per_pattern(store: Store) -> None:
    items = await store.enqueue([("orders/out", msg(1)), ("orders/out", msg(2))])
    assert store.dlq_depth() == 0
    await store.dead_letter([letter(1), letter(2)], [it.id for it in items])
    await store.dead_letter([letter(3, "hooks", None)])
    assert (store.dlq_depth("orders"), store.dlq_depth("hooks"), store.dlq_depth()) == (2, 1, 3)
    assert store.dlq_depth("nothing") == 0
    assert await store.take_redrives() == []


async def test_memory_store_keeps_nothing_but_dead_letters() -> None:
    store = MemoryStore()
    await store.open()
    await store.enqueue([("q", msg(1))])
    await store.dead_letter([letter(1)])
    assert not store.durable
    assert store.pending() == []
    assert [d.message for d in store.letters] == [msg(1)]
    await store.close()


async def test_memory_store_cannot_load() -> None:
    store = MemoryStore()
    await store.load([Item(1, "q", msg(1))])  # nothing to read back
    with pytest.raises(StoreError):
        await store.load([Item(2, "q", None)])


def test_dead_letter_failed_at_defaults_to_now() -> None:
    assert letter(1).failed_at > 1_700_000_000
    assert DeadLetter(msg(1), "p", None, "expired", 0, failed_at=12.5).failed_at == 12.5
