"""The delivery ids a webhook input has accepted, in a small SQLite file of the data
folder, so a redelivery is recognised after a restart too."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SCHEMA = "CREATE TABLE IF NOT EXISTS delivery (id TEXT PRIMARY KEY, accepted REAL NOT NULL)"


def file_for(data_dir: Path, input_name: str) -> Path:
    """`<data_dir>/webhook-<input name>.db`, the name reduced to safe characters."""
    return data_dir / f"webhook-{re.sub(r'[^A-Za-z0-9._-]', '_', input_name)}.db"


class Deliveries:
    """Accepted delivery ids, the newest `limit` of them.

    SQLite calls run on one thread of their own, off the event loop; the answer to a
    sender waits for them (an id is recorded after its messages are durable).
    """

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.thread = ThreadPoolExecutor(1, thread_name_prefix=f"wireway[{path.stem}]")
        self.db: sqlite3.Connection | None = None

    async def run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.thread, call)

    async def open(self) -> None:
        await self.run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(SCHEMA)
        self.db = db

    async def seen(self, delivery_id: str) -> bool:
        return await self.run(lambda: self._seen(delivery_id))

    def _seen(self, delivery_id: str) -> bool:
        assert self.db is not None
        row = self.db.execute("SELECT 1 FROM delivery WHERE id = ?", (delivery_id,)).fetchone()
        return row is not None

    async def add(self, delivery_id: str) -> None:
        await self.run(lambda: self._add(delivery_id))

    def _add(self, delivery_id: str) -> None:
        assert self.db is not None
        db = self.db
        with db:  # one transaction, committed on leaving
            cursor = db.execute(
                "INSERT OR IGNORE INTO delivery (id, accepted) VALUES (?, ?)", (delivery_id, time.time())
            )
            newest = cursor.lastrowid
            if cursor.rowcount and newest is not None and newest > self.limit:
                # rowids grow with each insert: the ones `limit` behind the newest go
                db.execute("DELETE FROM delivery WHERE rowid <= ?", (newest - self.limit,))

    async def close(self) -> None:
        if self.db is not None:
            db, self.db = self.db, None
            await self.run(db.close)
        self.thread.shutdown(wait=True)
