"""The SQLite outbox: durability across restarts, group commit, failures of a group,
one row per message, reading back what a long queue let go of."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_support import letter, msg, write_lock

from wireway.envelope import Message
from wireway.runtime.buffer_file import id_ranges
from wireway.runtime.dlq import DlqAdmin
from wireway.runtime.outbox import ID_BLOCK, SqliteStore
from wireway.runtime.queue import OutputQueue
from wireway.runtime.store import DeadLetter, StoreError


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "buffer.db"


@pytest.fixture
async def sqlite_store(db: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(db)
    await store.open()
    yield store
    await store.close()


@pytest.mark.parametrize("synchronous", ["full", "normal"])
async def test_pending_survives_close_and_reopen(db: Path, synchronous: str) -> None:
    store = SqliteStore(db, synchronous=synchronous)  # type: ignore[arg-type]
    await store.open()
    assert store.durable
    assert store.pending() == []
    items = await store.enqueue([("orders/a", msg(1, "high")), ("orders/b", msg(2))])
    items += await store.enqueue([("orders/a", msg(3, "low"))])
    await store.close()

    again = SqliteStore(db, synchronous=synchronous)  # type: ignore[arg-type]
    await again.open()
    assert again.pending() == items
    await again.ack([items[0].id, items[2].id])
    await again.close()

    third = SqliteStore(db)
    await third.open()
    assert third.pending() == [items[1]]
    await third.close()


async def test_ids_stay_monotonic_across_reopen_even_when_emptied(db: Path) -> None:
    store = SqliteStore(db)
    await store.open()
    first = await store.enqueue([("q", msg(n)) for n in range(5)])
    await store.ack([it.id for it in first])  # the outbox is empty again
    await store.close()

    store = SqliteStore(db)
    await store.open()
    assert store.pending() == []
    second = await store.enqueue([("q", msg(9))])
    assert second[0].id > first[-1].id
    await store.close()


async def test_ack_deletes_only_the_given_ids(sqlite_store: SqliteStore) -> None:
    items = await sqlite_store.enqueue([("q", msg(n)) for n in range(10)])
    await sqlite_store.ack([it.id for it in items[::2]])
    assert sqlite_store.pending() == items[1::2]


async def test_dead_letter_moves_items_in_one_transaction(sqlite_store: SqliteStore, db: Path) -> None:
    items = await sqlite_store.enqueue([("orders/out", msg(n)) for n in range(4)])
    await sqlite_store.dead_letter([letter(0), letter(1)], [items[0].id, items[1].id])
    assert sqlite_store.pending() == items[2:]
    assert sqlite_store.dlq_depth("orders") == 2
    with DlqAdmin(db) as admin:
        assert [r["message_id"] for r in admin.list()] == ["m1", "m0"]

    broken = DeadLetter(msg(2), None, "orders/out", "boom", 1)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        await sqlite_store.dead_letter([letter(3), broken], [items[2].id, items[3].id])
    assert sqlite_store.pending() == items[2:]  # rolled back: nothing deleted ...
    assert sqlite_store.dlq_depth("orders") == 2  # ... and nothing inserted
    with DlqAdmin(db) as admin:
        assert admin.depth() == {"orders": 2}


async def test_close_writes_what_was_already_submitted(db: Path) -> None:
    store = SqliteStore(db)
    await store.open()
    tasks = [asyncio.create_task(store.enqueue([("q", msg(n))])) for n in range(20)]
    await asyncio.sleep(0)  # every task has handed its rows to the writer
    await store.close()
    items = [it for batch in await asyncio.gather(*tasks) for it in batch]
    with pytest.raises(StoreError, match="not open"):
        await store.enqueue([("q", msg(99))])
    store = SqliteStore(db)
    await store.open()
    assert store.pending() == items
    await store.close()


def test_synchronous_is_checked(db: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(db, synchronous="off")  # type: ignore[arg-type]


async def test_concurrent_enqueues_are_grouped(sqlite_store: SqliteStore) -> None:
    batches = await asyncio.gather(
        *(sqlite_store.enqueue([("q", msg(n)), ("r", msg(n))]) for n in range(100))
    )
    items = [it for batch in batches for it in batch]
    assert len({it.id for it in items}) == 200
    assert sqlite_store.pending() == sorted(items, key=lambda it: it.id)
    assert 1 <= sqlite_store.commits < 100


async def test_ops_waiting_behind_a_commit_share_the_next_one(sqlite_store: SqliteStore, db: Path) -> None:
    with write_lock(db):
        first = asyncio.create_task(sqlite_store.enqueue([("q", msg(0))]))
        await asyncio.sleep(0.2)  # the writer holds it and waits for the lock
        rest = [asyncio.create_task(sqlite_store.enqueue([("q", msg(n))])) for n in range(1, 31)]
        ack = asyncio.create_task(sqlite_store.ack([1]))
        await asyncio.sleep(0.1)
        assert not first.done()
    await asyncio.gather(first, *rest, ack)
    assert sqlite_store.commits == 2
    assert [it.message for it in sqlite_store.pending()] == [msg(n) for n in range(1, 31)]


async def test_a_failed_transaction_fails_its_whole_group(sqlite_store: SqliteStore, db: Path) -> None:
    with write_lock(db):
        first = asyncio.create_task(sqlite_store.enqueue([("q", msg(0))]))
        await asyncio.sleep(0.2)
        good = asyncio.create_task(sqlite_store.enqueue([("q", msg(1))]))
        bad = asyncio.create_task(sqlite_store.enqueue([(None, msg(2))]))  # type: ignore[list-item]
        await asyncio.sleep(0.1)
    await first
    for task in (good, bad):
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
            await task
    assert not sqlite_store.healthy
    assert [it.message for it in sqlite_store.pending()] == [msg(0)]
    # the writer carries on
    later = await sqlite_store.enqueue([("q", msg(3))])
    assert sqlite_store.healthy
    assert later[0].id > 3
    assert [it.message for it in sqlite_store.pending()] == [msg(0), msg(3)]


async def test_many_acks_in_one_group_all_commit(db: Path) -> None:
    """Several acks and enqueues grouped into one transaction all succeed (a cursor
    left open by the first ack would make the second fail with SQLITE_MISUSE)."""
    store = SqliteStore(db)
    await store.open()
    try:
        items = await store.enqueue([("q", Message(str(i), "2026-01-01T00:00:00Z", i)) for i in range(40)])
        await asyncio.gather(
            *(store.ack([it.id]) for it in items[:20]),
            *(store.enqueue([("q", Message("x", "2026-01-01T00:00:00Z", 0))]) for _ in range(5)),
        )
        await asyncio.gather(*(store.ack([it.id]) for it in items[20:]))
    finally:
        await store.close()
    reopened = SqliteStore(db)
    await reopened.open()
    try:
        assert [it.message.message_id for it in reopened.pending()] == ["x"] * 5
    finally:
        await reopened.close()


async def test_large_groups_of_inserts_and_acks(db: Path) -> None:
    """Multi-row INSERTs (256 rows a statement) and multi-range DELETEs (64 ranges a
    statement): more rows and ranges than one statement holds, in one group."""
    store = SqliteStore(db)
    await store.open()
    try:
        items = await store.enqueue([("q", Message(str(i), "2026-01-01T00:00:00Z", i)) for i in range(700)])
        assert len({it.id for it in items}) == 700
        # every other id: 350 separate ranges, acked by 7 concurrent callers
        odd = [it.id for it in items if it.id % 2]
        await asyncio.gather(*(store.ack(odd[k::7]) for k in range(7)))
    finally:
        await store.close()
    reopened = SqliteStore(db)
    await reopened.open()
    try:
        left = reopened.pending()
        assert sorted(it.id for it in left) == sorted(it.id for it in items if it.id % 2 == 0)
        assert {it.message.payload for it in left} == {int(it.message.message_id) for it in left}
    finally:
        await reopened.close()


async def test_only_groups_of_deletes_skip_the_sync(sqlite_store: SqliteStore, db: Path) -> None:
    """Acks alone commit without an fsync; enqueues (and everything else) keep it, so
    an acknowledged message is always on disk before its sender hears so."""

    def synchronous(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    items = await sqlite_store.enqueue([("q", msg(n)) for n in range(4)])
    assert sqlite_store.unsynced_commits == 0
    await sqlite_store.ack([items[0].id, items[1].id])
    assert sqlite_store.unsynced_commits == 1
    assert await sqlite_store._submit(synchronous) == 2  # FULL again for any other group
    more = await sqlite_store.enqueue([("q", msg(9))])
    assert sqlite_store.unsynced_commits == 1
    await sqlite_store.close()
    again = SqliteStore(db)
    await again.open()
    assert again.pending() == [*items[2:], *more]  # the unsynced deletes are committed too
    await again.close()


async def test_released_rows_are_deleted_with_the_next_insert(db: Path) -> None:
    """An ack waits briefly for the next enqueue and is deleted in its commit: one writer
    transaction for both, and the ack returns once that commit is done."""
    store = SqliteStore(db)
    await store.open()
    try:
        first = await store.enqueue([("q", msg(n)) for n in range(3)])
        commits = store.commits
        ack = asyncio.create_task(store.ack([first[0].id]))
        await asyncio.sleep(0)  # the ack holds its ids back
        more = await store.enqueue([("q", msg(7))])
        await ack
        assert store.commits == commits + 1
        alone = store.commits
        await store.ack([first[1].id])  # nothing follows: deleted on its own shortly after
        assert store.commits == alone + 1
    finally:
        await store.close()
    again = SqliteStore(db)
    await again.open()
    assert again.pending() == [first[2], *more]
    await again.close()


async def test_a_message_for_several_queues_is_one_row(db: Path) -> None:
    """Its body is stored once; the row goes when every queue let go of it, and after a
    restart it is back in all of its queues (at-least-once)."""
    store = SqliteStore(db)
    await store.open()
    m, other = msg(1), msg(2)
    items = await store.enqueue([("p/a", m), ("p/b", m), ("p/c", m), ("p/a", other)])
    assert [it.id for it in items[:3]] == [items[0].id] * 3
    assert items[3].id == items[0].id + 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2
    await store.ack([items[0].id])  # p/a delivered it
    await store.dead_letter([letter(1)], [items[0].id])  # p/b gave up on it
    await store.close()
    again = SqliteStore(db)
    await again.open()
    back = again.pending()
    assert [(it.queue, it.message) for it in back] == [("p/a", m), ("p/b", m), ("p/c", m), ("p/a", other)]
    await again.ack([back[0].id, back[1].id, back[2].id])
    assert [it.message for it in again.pending()] == [other]
    await again.close()


async def test_a_long_queue_keeps_only_its_head_in_memory(db: Path) -> None:
    """Past `keep` items a durable queue lets go of the messages; load() reads them back."""
    store = SqliteStore(db)
    await store.open()
    messages = [msg(n) for n in range(10)]
    items = await store.enqueue([("p/out", m) for m in messages])
    queue = OutputQueue("p/out", capacity=100, keep=3)
    queue.put(items)
    assert [it.message is not None for it in items] == [True] * 3 + [False] * 7
    batch = queue.take(6)
    await store.load(batch)
    assert [it.message for it in batch] == messages[:6]
    await store.ack([it.id for it in batch])
    rest = queue.take(10)
    await store.load(rest)
    assert [it.message for it in rest] == messages[6:]
    await store.close()


async def test_outputs_reading_the_same_rows_back_share_one_copy(db: Path) -> None:
    """Two queues that let go of the same messages read them back as one object each
    (decoded once); once nobody holds it, a message is decoded afresh."""
    import gc

    store = SqliteStore(db)
    await store.open()
    messages = [msg(n) for n in range(6)]
    items = await store.enqueue([(q, m) for m in messages for q in ("p/a", "p/b")])
    queues = {q: OutputQueue(q, capacity=100, keep=1) for q in ("p/a", "p/b")}
    for q, queue in queues.items():
        queue.put([it for it in items if it.queue == q])
    del messages, items
    gc.collect()
    a, b = queues["p/a"].take(6), queues["p/b"].take(6)
    await store.load(a)
    await store.load(b)
    assert [x.message for x in a] == [y.message for y in b] == [msg(n) for n in range(6)]
    assert all(x.message is y.message for x, y in zip(a[1:], b[1:], strict=True))
    ids = [it.id for it in a]
    first = a[1].message
    for it in a + b:
        it.message = None
    del first
    gc.collect()
    assert not store._loaded  # nobody holds them: nothing kept
    await store.load(a)
    assert [it.message for it in a] == [msg(n) for n in range(6)]
    assert [it.id for it in a] == ids
    await store.close()


def test_id_ranges() -> None:
    """Acks delete ranges of consecutive ids; duplicates and order do not matter."""
    assert id_ranges([1, 2, 3, 7, 8]) == [(1, 3), (7, 8)]
    assert id_ranges([5, 3, 4, 4]) == [(3, 5)]
    assert id_ranges([10]) == [(10, 10)]
    assert id_ranges([]) == []


def test_id_ranges_of_a_group() -> None:
    """The ids of a group's acks (several outputs, any order, repeats) join into as few
    ranges as cover exactly them."""
    from hypothesis import given
    from hypothesis import strategies as st

    assert id_ranges([5, 6, 1, 2, 3, 4]) == [(1, 6)]
    assert id_ranges([1, 2, 4, 5, 2]) == [(1, 2), (4, 5)]

    @given(st.lists(st.lists(st.integers(0, 300), max_size=30), max_size=6))
    def covers_the_same_ids(acks: list[list[int]]) -> None:
        ids = [i for ack in acks for i in ack]
        ranges = id_ranges(ids)
        assert {i for lo, hi in ranges for i in range(lo, hi + 1)} == set(ids)
        assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(ranges))

    covers_the_same_ids()


async def test_ids_stay_unique_across_restarts_with_the_last_id_kept_in_blocks(db: Path) -> None:
    """meta.last_id moves in blocks (one UPDATE for many commits: it stays a block
    ahead of the ids written), and a restart hands out ids past every one written."""
    store = SqliteStore(db)
    await store.open()
    first = [it.id for it in await store.enqueue([("q", msg(1))])]
    for n in range(2, 12):
        first += [it.id for it in await store.enqueue([("q", msg(n))])]
    await store.close()
    with sqlite3.connect(db) as conn:
        (saved,) = conn.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone()
    assert int(saved) >= max(first) + ID_BLOCK - len(first)
    store = SqliteStore(db)
    await store.open()
    try:
        again = [it.id for it in await store.enqueue([("q", msg(99))])]
        assert min(again) > max(first)
    finally:
        await store.close()
