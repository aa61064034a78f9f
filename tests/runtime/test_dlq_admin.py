"""The DLQ admin on a buffer file a store has open: list, show, depth, redrive, purge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_support import letter, msg

from wireway.errors import WirewayError
from wireway.runtime.dlq import DlqAdmin
from wireway.runtime.outbox import SqliteStore
from wireway.runtime.store import DatabaseNotFound, StoreError


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "buffer.db"


@pytest.fixture
async def sqlite_store(db: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(db)
    await store.open()
    yield store
    await store.close()


async def test_admin_list_show_depth_purge_while_open(sqlite_store: SqliteStore, db: Path) -> None:
    await sqlite_store.dead_letter([letter(1), letter(2), letter(3, "hooks", None)])
    with DlqAdmin(db) as admin:
        rows = admin.list()
        assert [r["message_id"] for r in rows] == ["m3", "m2", "m1"]
        assert set(rows[0]) == {
            "id", "message_id", "pattern", "queue", "reason", "attempts", "failed_at",
        }  # fmt: skip
        assert [r["message_id"] for r in admin.list("orders", limit=1)] == ["m2"]
        assert admin.depth() == {"hooks": 1, "orders": 2}

        row = admin.show("m2")
        assert row is not None
        assert (row["pattern"], row["queue"], row["attempts"]) == ("orders", "orders/out", 2)
        assert row["reason"] == "HTTP 404: nope 2"
        assert row["message"]["messageId"] == "m2"
        assert row["message"]["payload"] == {"n": 2, "text": "héllo"}
        assert row["message"]["metadata"]["correlationId"] == "c2"
        assert admin.show("missing") is None

        assert admin.purge("hooks") == 1
        assert admin.depth() == {"orders": 2}
        assert sqlite_store.dlq_depth("hooks") == 1  # the cache catches up on the next poll
        assert await sqlite_store.take_redrives() == []
        assert sqlite_store.dlq_depth("hooks") == 0
        assert admin.purge() == 2
        assert admin.purge() == 0


async def test_redrive_hands_letters_back_once(sqlite_store: SqliteStore, db: Path) -> None:
    await sqlite_store.dead_letter(
        [letter(1), letter(2), letter(3, "hooks", None), letter(4, "hooks", "hooks/hook")]
    )
    with DlqAdmin(db) as admin:
        assert admin.redrive(message_id="m1") == 1
        assert admin.redrive(pattern="hooks") == 2
        assert admin.redrive(pattern="nothing") == 0
        assert admin.depth() == {"orders": 1}

    taken = await sqlite_store.take_redrives()
    assert [(d.message, d.pattern, d.queue, d.attempts) for d in taken] == [
        (msg(1), "orders", "orders/out", 1),
        (msg(3), "hooks", None, 3),
        (msg(4), "hooks", "hooks/hook", 4),
    ]
    assert await sqlite_store.take_redrives() == []
    assert (sqlite_store.dlq_depth("orders"), sqlite_store.dlq_depth("hooks")) == (1, 0)


async def test_redrives_wait_for_the_next_start(db: Path) -> None:
    store = SqliteStore(db)
    await store.open()
    await store.dead_letter([letter(1)])
    await store.close()
    with DlqAdmin(db) as admin:
        assert admin.redrive() == 1
    store = SqliteStore(db)
    await store.open()
    assert store.dlq_depth() == 0
    assert [d.message for d in await store.take_redrives()] == [msg(1)]
    await store.close()


def test_admin_refuses_a_missing_database(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "buffer.db"
    with pytest.raises(DatabaseNotFound, match="no wireway database") as info:
        DlqAdmin(path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, WirewayError)
    assert not path.exists()
    assert not path.parent.exists()


def test_admin_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    path.write_text("not a database at all, just some text" * 100)
    with pytest.raises(StoreError, match="not a wireway database"):
        DlqAdmin(path)
