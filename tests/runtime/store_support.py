"""Messages, dead letters and a write lock for the store tests (test_store, test_outbox,
test_dlq_admin)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wireway.envelope import Message, Metadata
from wireway.runtime.store import DeadLetter


def msg(n: int, priority: str = "normal") -> Message:
    return Message(
        message_id=f"m{n}",
        timestamp="2026-01-01T00:00:00.000Z",
        payload={"n": n, "text": "héllo"},
        source="test",
        metadata=Metadata(priority=priority, correlation_id=f"c{n}"),  # type: ignore[arg-type]
    )


def letter(n: int, pattern: str = "orders", queue: str | None = "orders/out") -> DeadLetter:
    return DeadLetter(msg(n), pattern, queue, f"HTTP 404: nope {n}", attempts=n)


@contextmanager
def write_lock(db: Path) -> Iterator[None]:
    """Hold the database's write lock from another connection, as the CLI could."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("COMMIT")
        other.close()
