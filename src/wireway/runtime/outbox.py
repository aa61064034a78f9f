"""The durable outbox: SQLite (WAL) written by one group-committing thread.

Async callers hand operations to a dedicated writer thread. The thread blocks for the
first waiting operation, drains every other one already queued, runs them all in ONE
transaction, commits once and resolves each caller's future on its event loop. So a
sync (fsync with `synchronous="full"`) is paid per group, not per message, and not
at all for a group that only deletes delivered items: losing such a commit to a power
cut only means delivering those items again, and the next synced commit makes it
durable with everything before it (one WAL, written in order).

A message routed to several outputs is one outbox row (its body once, the queue
names in `queue` joined by newlines); the row is deleted once every queue has let
go of it. After a crash it goes back to all of its queues, also those that had
already delivered it: at-least-once, as outputs must be idempotent anyway.

The file's schema, opening and batched statements are in buffer_file.py, the writer's
operations in outbox_ops.py, the check at start in buffer_check.py, the push-back of
a full buffer in buffer_limits.py; the DLQ admin (dlq.py) works on the same file from
another process. `SqliteStore` stays one class a little over 400 lines: its
event-loop side and its writer thread share the row ids, the per-row queue counts and
the DLQ counts, and splitting them would put those hand-offs between modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import sqlite3
import threading
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wireway.envelope import Message, decode, encode
from wireway.runtime import outbox_ops as ops
from wireway.runtime.buffer_check import OnDamaged, ensure_sound
from wireway.runtime.buffer_file import (
    DELETE_OUTBOX,
    INSERT_DLQ,
    SELECT_RANGE,
    Synchronous,
    connect,
    count_dlq,
    dlq_row,
    id_ranges,
    open_writer,
)
from wireway.runtime.buffer_limits import Fullness, is_full_error
from wireway.runtime.outbox_ops import Delete, Fn, Insert, Op, PendingDeletes
from wireway.runtime.store import DeadLetter, Item, OnQueued, Store, StoreError

FAULT = "WIREWAY_FAULT"  # a test hook, see SqliteStore
# meta.last_id is set this far past the highest id written, so that most commits need
# no UPDATE of it (a restart skips the ids of the block: they are only row ids)
ID_BLOCK = 1 << 16


class SqliteStore(Store):
    """The durable store: `<data_dir>/buffer.db` (see buffer_file.py).

    `synchronous="full"` (the default, what `wireway run` uses): a commit that inserts
    is synced before anyone is acknowledged, so an acknowledged message survives a
    power cut. The file is checked at open (buffer_check.py); a full disk or
    `max_bytes` pushes back (buffer_limits.py).

    Test hook: `WIREWAY_FAULT=after-commit` in the environment (read once, here) makes
    the process SIGKILL itself right after the first commit that inserts messages and
    before anyone is acknowledged, to prove such messages are delivered after a restart.
    """

    durable = True

    def __init__(
        self,
        path: Path,
        synchronous: Synchronous = "full",
        *,
        max_bytes: int = 0,
        on_damaged: OnDamaged = "move_aside",
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self.on_damaged = on_damaged
        self.full = Fullness(self.path, max_bytes)
        self._fault = os.environ.get(FAULT, "")
        self._undeleted: list[int] = []  # ids a failed group was to delete (writer side)
        self.commits = 0
        self.unsynced_commits = 0  # groups of deletes only, committed without a sync
        self._synced = True  # the writer connection's `synchronous` is self.synchronous
        self.healthy = True
        self._ops: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._next_id = 1  # next id to hand out (event loop side)
        self._top = 0  # highest id written (writer side)
        self._saved_top = 0  # meta.last_id: no id up to it is handed out after a restart
        self._dlq: dict[str, int] = {}  # committed DLQ depth per pattern
        self._delta: dict[str, int] = {}  # DLQ changes of the group being written
        self._recount: dict[str, int] | None = None
        self._data_version = 0
        self._refs: dict[int, int] = {}  # row id -> queues that still hold it
        self._positions: dict[str, bytes] = {}  # inputs' read positions, as last queued
        self._deletes = PendingDeletes(self._flush_deletes)  # for the next commit
        self._checkpointer: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None  # for Store.load, beside the writer
        self._reader_lock = threading.Lock()
        self._loaded: weakref.WeakValueDictionary[int, Message] = weakref.WeakValueDictionary()
        self._no_checkpoints = threading.Event()

    # ----- lifecycle ----------------------------------------------------------------
    async def open(self) -> None:
        if self._thread is not None:
            return
        await asyncio.to_thread(self._setup)
        self._thread = threading.Thread(target=self._run, name=f"wireway-store[{self.path}]", daemon=True)
        self._thread.start()
        self._no_checkpoints.clear()
        self._checkpointer = threading.Thread(
            target=ops.checkpoints,
            args=(self.path, self.synchronous, self._no_checkpoints),
            name=f"wireway-checkpoint[{self.path}]",
            daemon=True,
        )
        self._checkpointer.start()

    def _setup(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            ensure_sound(self.path, self.on_damaged)
            opened = open_writer(self.path, self.synchronous)  # the writer thread's only, from here on
        except (sqlite3.Error, OSError) as exc:  # e.g. no room on the disk for its -wal file
            raise StoreError(f"cannot open the buffer file {self.path}: {exc}") from exc
        self._top = self._saved_top = opened.top
        self._next_id = self._top + 1
        self._dlq, self._data_version, self._positions = opened.dlq, opened.data_version, opened.positions
        self._conn = opened.conn

    async def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._flush_deletes()
        self._thread = None  # refuse new work; what is queued is still written
        self._no_checkpoints.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
        self._ops.put(None)
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        await asyncio.to_thread(thread.join)  # closing the last connection checkpoints
        self._conn = None

    def pending(self) -> list[Item]:
        if not self.path.exists():
            return []
        with contextlib.closing(connect(self.path)) as conn:
            rows = conn.execute("SELECT id, queue, body FROM outbox ORDER BY id").fetchall()
        items: list[Item] = []
        for i, names, encoded in rows:
            message = decode(encoded)
            queues = names.split("\n")
            self._refs[i] = len(queues)
            items.extend(Item(i, q, message) for q in queues)
        return items

    # ----- operations ---------------------------------------------------------------
    async def _submit(self, fn: Fn | Insert | Delete) -> Any:
        return await self._put(fn)

    def _put(self, fn: Fn | Insert | Delete) -> asyncio.Future[Any]:
        """Hand an operation to the writer; its future resolves once it is committed."""
        if self._thread is None:
            raise StoreError(f"store {self.path} is not open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._ops.put((fn, fut, loop))
        return fut

    def position(self, key: str) -> bytes | None:
        return self._positions.get(key)

    async def enqueue(
        self,
        entries: list[tuple[str, Message]],
        on_queued: OnQueued | None = None,
        positions: dict[str, bytes] | None = None,
    ) -> list[Item]:
        """Store the messages; a message routed to several queues is ONE row (its body
        once, its queue names joined by newlines) whose items share its id.

        `on_queued` gets the items once their insert is queued to the writer: anything
        they cause (an ack's delete) reaches the writer after it, and a group
        always inserts first. `positions` are committed in the same transaction."""
        if entries and (refused := self.full.refuse()) is not None:
            raise refused
        if positions:
            self._positions.update(positions)
        if not entries:
            if positions:
                await self._put(Insert([], 0, positions))
            return []
        now = time.time()
        next_id = self._next_id
        row_of: dict[int, int] = {}  # id(message) -> row id
        queues: dict[int, list[str]] = {}
        firsts: list[tuple[int, Message]] = []
        items: list[Item] = []
        for q, m in entries:
            rid = row_of.get(id(m))
            if rid is None:
                rid = row_of[id(m)] = next_id
                next_id += 1
                queues[rid] = [q]
                firsts.append((rid, m))
            else:
                queues[rid].append(q)
            items.append(Item(rid, q, m))
        self._next_id = next_id
        refs = self._refs
        rows = []
        for rid, m in firsts:
            names = queues[rid]
            refs[rid] = len(names)
            rows.append((rid, names[0] if len(names) == 1 else "\n".join(names), encode(m), now))
        try:
            deletes, deleted = self._deletes.take()
            committed = self._put(Insert(rows, next_id - 1, positions, deletes))
            if deleted is not None:
                ops.pass_on(committed, deleted)
            if on_queued is not None:
                on_queued(items)
            await committed
        except BaseException:
            for rid, _ in firsts:
                refs.pop(rid, None)
            raise
        return items

    def _release(self, ids: Sequence[int]) -> list[int]:
        """Rows whose every queue has now let go of them (delivered or dead-lettered)."""
        refs = self._refs
        done: list[int] = []
        for i in ids:
            left = refs.get(i, 1) - 1
            if left <= 0:
                refs.pop(i, None)
                done.append(i)
            else:
                refs[i] = left
        return done

    async def ack(self, ids: list[int]) -> None:
        """Delete the rows every queue has let go of, with the next insert's commit or
        after DELETE_DELAY, whichever comes first."""
        released = self._release(ids)
        if released:
            await asyncio.shield(self._deletes.add(released))

    def _flush_deletes(self) -> None:
        ids, deleted = self._deletes.take()
        if ids is None or deleted is None:
            return
        try:
            committed = self._put(Delete(ids))
        except StoreError as exc:
            deleted.set_exception(exc)
            return
        ops.pass_on(committed, deleted)

    async def dead_letter(self, letters: list[DeadLetter], ids: Sequence[int] = ()) -> None:
        if not letters and not ids:
            return
        rows = [dlq_row(d) for d in letters]
        keys = [(i,) for i in self._release(ids)]
        added = Counter(d.pattern for d in letters)

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(INSERT_DLQ, rows).close()
            conn.executemany(DELETE_OUTBOX, keys).close()
            for pattern, n in added.items():
                self._delta[pattern] = self._delta.get(pattern, 0) + n

        await self._submit(op)

    async def take_redrives(self) -> list[DeadLetter]:
        def op(conn: sqlite3.Connection) -> list[Any]:
            self._refresh_counts(conn)
            rows = conn.execute(
                "SELECT id, pattern, queue, body, attempts FROM redrive ORDER BY id"
            ).fetchall()
            if rows:
                conn.execute("DELETE FROM redrive WHERE id <= ?", (rows[-1][0],))
            return rows

        rows = await self._submit(op)
        return [
            DeadLetter(decode(encoded), pattern or "", q, "redrive", attempts or 0)
            for _, pattern, q, encoded, attempts in rows
        ]

    async def load(self, items: list[Item]) -> None:
        missing = [it for it in items if it.message is None]
        if not missing:
            return
        # outputs that fell behind together read the same rows back: one decoded copy
        # while any of them holds it (memory and CPU, once instead of once per output)
        loaded = self._loaded
        todo = []
        for it in missing:
            it.message = loaded.get(it.id)
            if it.message is None:
                todo.append(it)
        if not todo:
            return
        encoded_by_id = await asyncio.to_thread(self._read, id_ranges([it.id for it in todo]))
        for it in todo:
            msg = loaded.get(it.id)  # another output's load may have decoded it meanwhile
            if msg is None:
                encoded = encoded_by_id.get(it.id)
                if encoded is None:
                    raise StoreError(f"outbox row {it.id} is gone")
                msg = loaded[it.id] = decode(encoded)
            it.message = msg

    def _read(self, ranges: list[tuple[int, int]]) -> dict[int, bytes]:
        with self._reader_lock:
            if self._reader is None:
                self._reader = connect(self.path, shared=True)
            conn = self._reader
            found: dict[int, bytes] = {}
            for low, high in ranges:
                found.update(conn.execute(SELECT_RANGE, (low, high)).fetchall())
            return found

    def dlq_depth(self, pattern: str | None = None) -> int:
        counts = self._dlq
        return sum(counts.values()) if pattern is None else counts.get(pattern, 0)

    # ----- the writer thread --------------------------------------------------------
    def _refresh_counts(self, conn: sqlite3.Connection) -> None:
        """Recount the DLQ when another connection (the CLI) changed the file."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._recount = count_dlq(conn)  # includes this group's earlier changes
            self._delta = {}

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while (first := self._next()) is not None:
                group, stop = [first], False
                with contextlib.suppress(queue.Empty):  # take what is waiting, then write
                    while (op := self._ops.get_nowait()) is not None:
                        group.append(op)
                    stop = True  # close() was called: write this group, then stop
                self._write(conn, group)
                if stop:
                    break
        finally:
            conn.close()

    def _next(self) -> Op | None:
        """The next operation; while the disk is full, look for room between them."""
        while self.full.why == "disk":
            self.full.probe()
            with contextlib.suppress(queue.Empty):
                return self._ops.get(timeout=self.full.retry_after)
        return self._ops.get()

    def _write(self, conn: sqlite3.Connection, group: list[Op]) -> None:
        self._delta = {}
        self._recount = None
        # deletes alone need no sync (see the module's docstring)
        sync = self.synchronous == "normal" or not all(type(fn) is Delete for fn, _, _ in group)
        try:
            if sync != self._synced:
                conn.execute(f"PRAGMA synchronous={self.synchronous.upper() if sync else 'NORMAL'}")
                self._synced = sync
            conn.execute("BEGIN IMMEDIATE")
            try:
                results, last = ops.write_group(conn, group, self._undeleted)
                self._top = max(self._top, last)
                saved = self._saved_top
                if self._top > saved:  # ids ahead are recorded in blocks, not per commit
                    saved = self._top + ID_BLOCK
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'last_id'", (str(saved),))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:  # every caller of the group gets it; the writer goes on  # noqa: BLE001
            self._undeleted += ops.deletes_of(group)  # delivered rows: deleted with the next group
            if is_full_error(exc, self.path):
                self.full.disk_full(exc)
                ops.refuse_group(group, self.full.error())
            else:
                self.healthy = False
                ops.resolve(group, None, exc)
            return
        inserted = any(isinstance(fn, Insert) and fn.rows for fn, _, _ in group)
        if inserted and sync and self._fault == "after-commit":
            os.kill(os.getpid(), signal.SIGKILL)  # the test hook (see the class docstring)
        self._undeleted = []
        self.full.committed(conn, inserted)
        self.commits += 1
        self.unsynced_commits += not sync
        self.healthy = True
        self._saved_top = saved
        if self._recount is not None or self._delta:
            counts = dict(self._recount if self._recount is not None else self._dlq)
            for pattern, n in self._delta.items():
                counts[pattern] = counts.get(pattern, 0) + n
            self._dlq = {p: n for p, n in counts.items() if n > 0}
        ops.resolve(group, results, None)
