"""The operations the outbox hands its writer thread, and the deletes it holds back."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wireway.errors import BackpressureError
from wireway.runtime.buffer_file import Synchronous, connect, delete_ids, insert_rows, save_positions

# Rows every queue has let go of wait this long to be deleted in the commit of the next
# insert: at a modest rate one writer transaction per batch instead of two (a crash
# meanwhile only delivers them again)
DELETE_DELAY = 0.02

CHECKPOINT_SECONDS = 0.25

Fn = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class Insert:
    """Outbox rows to insert: the writer joins those of a group into one statement per
    256 rows (a single HTTP request is one row: a statement per operation would cost
    a statement per request)."""

    rows: list[tuple[int, str, bytes, float]]
    last: int  # the highest id among them
    positions: dict[str, bytes] | None = None  # inputs' read positions, in the same commit
    deletes: list[int] | None = None  # released rows deleted in the same commit


@dataclass(slots=True)
class Delete:
    """Outbox ids every queue has let go of: the writer joins those of a group (acks of
    several outputs and batches) into one statement."""

    ids: list[int]


Op = tuple["Fn | Insert | Delete", "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def settle(pairs: list[tuple[asyncio.Future[Any], Any]], exc: Exception | None) -> None:
    for fut, value in pairs:
        if fut.done():  # the caller was cancelled; the work is done anyway
            continue
        if exc is None:
            fut.set_result(value)
        else:
            fut.set_exception(exc)


def pass_on(done: asyncio.Future[Any], to: asyncio.Future[Any]) -> None:
    """Settle `to` as `done` is settled, once it is."""

    def copy(done: asyncio.Future[Any]) -> None:
        # a group refused for want of room keeps its deletes for the next group
        if to.done():
            return
        if done.cancelled():  # its caller gave up waiting; the writer does the work anyway
            to.set_result(None)
        elif (exc := done.exception()) is not None and not isinstance(exc, BackpressureError):
            to.set_exception(exc)
        else:
            to.set_result(None)

    done.add_done_callback(copy)


class PendingDeletes:
    """Released row ids waiting to be deleted: taken by the next insert, or handed to
    `flush` after DELETE_DELAY; one future for all of them."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self.flush = flush
        self.ids: list[int] = []
        self.deleted: asyncio.Future[Any] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def add(self, ids: list[int]) -> asyncio.Future[Any]:
        """Hold `ids`; the future resolves once they are deleted."""
        self.ids += ids
        if self.deleted is None:
            loop = asyncio.get_running_loop()
            self.deleted = loop.create_future()
            self.timer = loop.call_later(DELETE_DELAY, self.flush)
        return self.deleted

    def take(self) -> tuple[list[int] | None, asyncio.Future[Any] | None]:
        """The ids held and their future (None, None when none), no longer held."""
        ids, deleted = self.ids, self.deleted
        if not ids:
            return None, None
        self.ids, self.deleted = [], None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return ids, deleted


def resolve(group: list[Op], results: list[Any] | None, exc: Exception | None) -> None:
    """Settle the futures of a written group (from the writer thread)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for n, (_, fut, loop) in enumerate(group):
        value = results[n] if results is not None else None
        by_loop.setdefault(loop, []).append((fut, value))
    for loop, pairs in by_loop.items():  # one wake-up per loop, not per caller
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, pairs, exc)


def checkpoints(path: Path, synchronous: Synchronous, stop: threading.Event) -> None:
    """Copy the WAL into the database file beside the writer, so a commit only
    appends to the WAL: a checkpoint inside a commit would hold up every ingest
    waiting for it. PASSIVE never waits for (nor blocks) the writer."""
    conn = connect(path, shared=True)
    try:
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        while not stop.wait(CHECKPOINT_SECONDS):
            with contextlib.suppress(sqlite3.Error):  # busy: the next round does it
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        conn.close()


def deletes_of(group: list[Op]) -> list[int]:
    """The outbox ids a group deletes."""
    ids = [i for fn, _, _ in group if isinstance(fn, Delete) for i in fn.ids]
    return ids + [i for fn, _, _ in group if isinstance(fn, Insert) for i in fn.deletes or ()]


def write_group(conn: sqlite3.Connection, group: list[Op], undeleted: list[int]) -> tuple[list[Any], int]:
    """One group's statements, in the caller's transaction: the inserts first, all in a
    few statements (nothing else in a group can touch their ids: acks and dead letters
    come after their enqueue committed), the positions, the deletes (with `undeleted`,
    those of groups that failed), then the other operations. Returns each operation's
    result and the highest id inserted (0: none)."""
    inserts = [fn for fn, _, _ in group if isinstance(fn, Insert)]
    last = 0
    if inserts:
        rows = inserts[0].rows if len(inserts) == 1 else [r for i in inserts for r in i.rows]
        if rows:
            insert_rows(conn, rows)
        last = max(i.last for i in inserts)
        for insert in inserts:
            if insert.positions:
                save_positions(conn, insert.positions)
    deletes = deletes_of(group) + undeleted
    if deletes:
        delete_ids(conn, deletes)
    return [None if isinstance(fn, (Insert, Delete)) else fn(conn) for fn, _, _ in group], last


def refuse_group(group: list[Op], exc: Exception) -> None:
    """A group failed for want of room: its acks succeed all the same (the writer keeps
    their ids for its next group), every other operation gets `exc`."""
    acks = [op for op in group if type(op[0]) is Delete]
    resolve(acks, [None] * len(acks), None)
    resolve([op for op in group if type(op[0]) is not Delete], None, exc)
