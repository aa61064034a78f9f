"""The operations the outbox hands its writer thread, and the deletes it holds back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Rows every queue has let go of wait this long to be deleted in the commit of the next
# insert: at a modest rate one writer transaction per batch instead of two (a crash
# meanwhile only delivers them again)
DELETE_DELAY = 0.02

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
        if to.done():
            return
        if done.cancelled():  # its caller gave up waiting; the writer does the work anyway
            to.set_result(None)
        elif (exc := done.exception()) is not None:
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
