"""The outbox and dead-letter store: SQLite (WAL) written by one group-committing thread.

Async callers hand operations to a dedicated writer thread. The thread blocks for the
first waiting operation, drains every other one already queued, runs them all in ONE
transaction, commits once and resolves each caller's future on its event loop. So a
sync (fsync with `synchronous="full"`) is paid per group, not per message, and not
at all for a group that only deletes delivered items: losing such a commit to a power
cut only means delivering those items again, and the next synced commit makes it
durable with everything before it (one WAL, written in order). Those syncs were one
in two or three of all, on a disk PostgreSQL shares.

A message routed to several outputs is one outbox row (its body once, the queue
names in `queue` joined by newlines); the row is deleted once every queue has let
go of it. After a crash it goes back to all of its queues, also those that had
already delivered it: at-least-once, as outputs must be idempotent anyway.

`MemoryStore` has the same API for `buffer: memory` and keeps only its dead letters.
`DlqAdmin` works on the same file from another process (the CLI) while an instance runs.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import queue
import sqlite3
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from wireway.envelope import Message, decode, encode
from wireway.errors import WirewayError

Synchronous = Literal["full", "normal"]
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY, queue TEXT NOT NULL, body BLOB NOT NULL, enqueued_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dlq(
  id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, pattern TEXT NOT NULL,
  queue TEXT, reason TEXT NOT NULL, attempts INTEGER NOT NULL, failed_at REAL NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS dlq_message_id ON dlq(message_id);
CREATE INDEX IF NOT EXISTS dlq_pattern ON dlq(pattern);
CREATE TABLE IF NOT EXISTS redrive(
  id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT, pattern TEXT, queue TEXT, body BLOB,
  attempts INTEGER);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '1'), ('last_id', '0');
"""
CHECKPOINT_SECONDS = 0.25
BUFFER_FILE = "buffer.db"
# where the buffer was before: the sensor application now stores its readings there (in
# one file, its transactions would hold the outbox's commits behind them)
EARLIER_BUFFER_FILE = "wireway.db"
_BUFFER_TABLES = {"outbox", "dlq", "redrive", "meta", "sqlite_sequence"}


def buffer_path(data_dir: Path, *, move: bool = False) -> Path:
    """The durable buffer's file, `<data_dir>/buffer.db`.

    A data dir from an earlier version has it in wireway.db: that file is used as it
    is, or, with `move` (the engine, holding the data dir's lock) and when it holds
    nothing but the buffer, made self-contained (WAL folded in) and renamed.
    """
    new, old = data_dir / BUFFER_FILE, data_dir / EARLIER_BUFFER_FILE
    if new.exists() or not old.exists():
        return new
    try:
        conn = sqlite3.connect(old, isolation_level=None)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "outbox" not in tables:
                return new  # not a buffer: the application's storage
            if not move or tables - _BUFFER_TABLES:
                return old
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")  # one file: the rename moves it all
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise WirewayError(f"cannot read the earlier buffer {old}: {exc}") from exc
    old.rename(new)
    return new


_INSERT_OUTBOX = "INSERT INTO outbox(id, queue, body, enqueued_at) VALUES (?, ?, ?, ?)"
_DELETE_OUTBOX = "DELETE FROM outbox WHERE id = ?"
_SELECT_RANGE = "SELECT id, body FROM outbox WHERE id BETWEEN ? AND ?"
_CHUNK = 256  # rows per multi-row INSERT (4 parameters each)


@functools.cache
def _insert_many(n: int) -> str:
    return _INSERT_OUTBOX + ", (?, ?, ?, ?)" * (n - 1)


@functools.cache
def _delete_many(n: int) -> str:
    return "DELETE FROM outbox WHERE " + " OR ".join(["id BETWEEN ? AND ?"] * n)


def _sizes(n: int, top: int) -> list[int]:
    """n split into statement sizes: `top` (a power of two) while it fits, then n's
    lower bits (13 -> 8, 4, 1). Few distinct statement texts, so few prepared
    statements kept: a prepared 256-row INSERT alone weighs tens of KiB."""
    sizes = [top] * (n // top)
    rest = n % top
    while rest:
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes


def _in_statements(
    conn: sqlite3.Connection, statement: Callable[[int], str], values: Sequence[tuple[Any, ...]], top: int
) -> None:
    """`values` in a few statements of `top`, then power-of-two sizes (see _sizes)."""
    at = 0
    for size in _sizes(len(values), top):
        conn.execute(statement(size), [v for value in values[at : at + size] for v in value]).close()
        at += size


def delete_ids(conn: sqlite3.Connection, ids: list[int]) -> None:
    """Outbox rows by id, as ranges of consecutive ids, up to 64 ranges a statement (see
    insert_rows for why few statements)."""
    _in_statements(conn, _delete_many, id_ranges(ids), 64)


def insert_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Outbox rows in a few multi-row INSERTs (of 256, 128, ... 1 rows).

    executemany steps the statement once per row, and the sqlite3 module lets go of
    the GIL around every step: under load the writer thread then waits for the event
    loop's thread to hand the GIL back (up to the 5 ms switch interval) once per row.
    A few statements per group keep it to a few waits.
    """
    _in_statements(conn, _insert_many, rows, _CHUNK)


def id_ranges(ids: Sequence[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7, 8] -> [(1, 3), (7, 8)]: a delivered batch is mostly consecutive ids."""
    out: list[tuple[int, int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        elif not out or i != out[-1][1]:
            out.append((i, i))
    return out


_INSERT_DLQ = (
    "INSERT INTO dlq(message_id, pattern, queue, reason, attempts, failed_at, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_DLQ_COLUMNS = "id, message_id, pattern, queue, reason, attempts, failed_at"

_Fn = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class _Insert:
    """Outbox rows to insert: the writer joins those of a group into one statement per
    256 rows (an HTTP request is one row; per-op statements added up under load)."""

    rows: list[tuple[int, str, bytes, float]]
    last: int  # the highest id among them


@dataclass(slots=True)
class _Delete:
    """Outbox ids every queue has let go of: the writer joins those of a group (acks of
    several outputs and batches) into one statement."""

    ids: list[int]


_Op = tuple["_Fn | _Insert | _Delete", "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class StoreError(WirewayError):
    """The store cannot do what was asked (closed, newer schema, not a wireway file)."""


class DatabaseNotFound(StoreError, FileNotFoundError):
    """There is no wireway database at the given path."""


@dataclass(slots=True)
class Item:
    """One message waiting in one output's outbox."""

    id: int
    queue: str
    message: Message | None  # None while it waits in the file alone (see Store.load)
    attempts: int = 0
    arrived: float = 0.0  # when ingest took it (time.time()), for the latency histogram


Early = Callable[[list["Item"]], None]


@dataclass(slots=True)
class DeadLetter:
    """A message that could not be delivered (or was rejected before routing)."""

    message: Message
    pattern: str
    queue: str | None
    reason: str
    attempts: int
    failed_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.failed_at:
            self.failed_at = time.time()


class Store(ABC):
    """What the runtime needs from a buffer: an outbox, a DLQ and redrive requests."""

    durable: bool = False
    healthy: bool = True
    commits: int = 0

    @abstractmethod
    async def open(self) -> None: ...
    @abstractmethod
    async def close(self) -> None: ...
    @abstractmethod
    def pending(self) -> list[Item]: ...
    @abstractmethod
    async def enqueue(self, entries: list[tuple[str, Message]], early: Early | None = None) -> list[Item]:
        """Store the messages; returns once they are durable. `early`, if given, gets
        the items as soon as they have ids, while the commit is still under way."""

    @abstractmethod
    async def ack(self, ids: list[int]) -> None: ...
    @abstractmethod
    async def dead_letter(self, letters: list[DeadLetter], ids: Sequence[int] = ()) -> None: ...
    @abstractmethod
    async def take_redrives(self) -> list[DeadLetter]: ...
    @abstractmethod
    def dlq_depth(self, pattern: str | None = None) -> int: ...

    async def load(self, items: list[Item]) -> None:
        """Read back the messages of items that were let go of while they waited."""
        if any(it.message is None for it in items):
            raise StoreError("this store keeps every message in memory")


def _connect(target: str | Path, *, uri: bool = False, shared: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        target,
        timeout=5.0,
        isolation_level=None,
        check_same_thread=not shared,
        uri=uri,
        cached_statements=64,  # 9 INSERT and 7 DELETE sizes (see _sizes), and the rest
    )
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _settle(pairs: list[tuple[asyncio.Future[Any], Any]], exc: Exception | None) -> None:
    for fut, value in pairs:
        if fut.done():  # the caller was cancelled; the work is done anyway
            continue
        if exc is None:
            fut.set_result(value)
        else:
            fut.set_exception(exc)


class SqliteStore(Store):
    """The durable store: `<data_dir>/buffer.db` (see buffer_path)."""

    durable = True

    def __init__(self, path: Path, synchronous: Synchronous = "full") -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self.commits = 0
        self.unsynced_commits = 0  # groups of deletes only, committed without a sync
        self._synced = True  # the writer connection's `synchronous` is self.synchronous
        self.healthy = True
        self._ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._next_id = 1  # next id to hand out (event loop side)
        self._top = 0  # highest id written (writer side)
        self._saved_top = 0  # highest id recorded in meta.last_id
        self._dlq: dict[str, int] = {}  # committed DLQ depth per pattern
        self._delta: dict[str, int] = {}  # DLQ changes of the group being written
        self._recount: dict[str, int] | None = None
        self._data_version = 0
        self._refs: dict[int, int] = {}  # row id -> queues that still hold it
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
            target=self._checkpoints, name=f"wireway-checkpoint[{self.path}]", daemon=True
        )
        self._checkpointer.start()

    def _setup(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path, shared=True)  # used by the writer thread only from here on
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot use WAL mode (got {mode!r})")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer thread does it
            conn.executescript(_SCHEMA)
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if int(meta["schema_version"]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {meta['schema_version']}; "
                    f"this wireway knows {SCHEMA_VERSION} (upgrade wireway)"
                )
            top = conn.execute("SELECT max(id) FROM outbox").fetchone()[0] or 0
            self._top = self._saved_top = max(top, int(meta["last_id"] or 0))
            self._next_id = self._top + 1
            self._dlq = _count_dlq(conn)
            self._data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
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
        with contextlib.closing(_connect(self.path)) as conn:
            rows = conn.execute("SELECT id, queue, body FROM outbox ORDER BY id").fetchall()
        items: list[Item] = []
        for i, names, body in rows:
            message = decode(body)
            queues = names.split("\n")
            self._refs[i] = len(queues)
            items.extend(Item(i, q, message) for q in queues)
        return items

    # ----- operations ---------------------------------------------------------------
    async def _submit(self, fn: _Fn | _Insert | _Delete) -> Any:
        return await self._put(fn)

    def _put(self, fn: _Fn | _Insert | _Delete) -> asyncio.Future[Any]:
        """Hand an operation to the writer; its future resolves once it is committed."""
        if self._thread is None:
            raise StoreError(f"store {self.path} is not open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._ops.put((fn, fut, loop))
        return fut

    async def enqueue(self, entries: list[tuple[str, Message]], early: Early | None = None) -> list[Item]:
        """Store the messages; a message routed to several queues is ONE row (its body
        once, its queue names joined by newlines) whose items share its id.

        `early` gets the items once their insert is queued to the writer: anything
        they cause (an ack's delete) reaches the writer after it, and a group
        always inserts first."""
        if not entries:
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
            committed = self._put(_Insert(rows, next_id - 1))
            if early is not None:
                early(items)
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
        released = self._release(ids)
        if released:
            await self._submit(_Delete(released))

    async def dead_letter(self, letters: list[DeadLetter], ids: Sequence[int] = ()) -> None:
        if not letters and not ids:
            return
        rows = [_dlq_row(d) for d in letters]
        keys = [(i,) for i in self._release(ids)]
        added = Counter(d.pattern for d in letters)

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(_INSERT_DLQ, rows).close()
            conn.executemany(_DELETE_OUTBOX, keys).close()
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
            DeadLetter(decode(body), pattern or "", q, "redrive", attempts or 0)
            for _, pattern, q, body, attempts in rows
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
        bodies = await asyncio.to_thread(self._read, id_ranges([it.id for it in todo]))
        for it in todo:
            msg = loaded.get(it.id)  # another output's load may have decoded it meanwhile
            if msg is None:
                body = bodies.get(it.id)
                if body is None:
                    raise StoreError(f"outbox row {it.id} is gone")
                msg = loaded[it.id] = decode(body)
            it.message = msg

    def _read(self, ranges: list[tuple[int, int]]) -> dict[int, bytes]:
        with self._reader_lock:
            if self._reader is None:
                self._reader = _connect(self.path, shared=True)
            conn = self._reader
            found: dict[int, bytes] = {}
            for low, high in ranges:
                found.update(conn.execute(_SELECT_RANGE, (low, high)).fetchall())
            return found

    def dlq_depth(self, pattern: str | None = None) -> int:
        counts = self._dlq
        return sum(counts.values()) if pattern is None else counts.get(pattern, 0)

    # ----- the writer thread --------------------------------------------------------
    def _checkpoints(self) -> None:
        """Copy the WAL into the database file beside the writer, so a commit only
        appends to the WAL: a checkpoint inside a commit held up every ingest waiting
        for it. PASSIVE never waits for (nor blocks) the writer."""
        conn = _connect(self.path, shared=True)
        try:
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            while not self._no_checkpoints.wait(CHECKPOINT_SECONDS):
                with contextlib.suppress(sqlite3.Error):  # busy: the next round does it
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def _refresh_counts(self, conn: sqlite3.Connection) -> None:
        """Recount the DLQ when another connection (the CLI) changed the file."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._recount = _count_dlq(conn)  # includes this group's earlier changes
            self._delta = {}

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while (first := self._ops.get()) is not None:
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

    def _write(self, conn: sqlite3.Connection, group: list[_Op]) -> None:
        self._delta = {}
        self._recount = None
        results: list[Any] = []
        # deletes alone need no sync (see the module's docstring)
        sync = self.synchronous == "normal" or not all(type(fn) is _Delete for fn, _, _ in group)
        try:
            if sync != self._synced:
                conn.execute(f"PRAGMA synchronous={self.synchronous.upper() if sync else 'NORMAL'}")
                self._synced = sync
            conn.execute("BEGIN IMMEDIATE")
            try:
                # inserts first, all in one statement: nothing else in a group can touch
                # their ids (acks and dead letters come after their enqueue committed)
                inserts = [fn for fn, _, _ in group if isinstance(fn, _Insert)]
                if inserts:
                    rows = inserts[0].rows if len(inserts) == 1 else [r for i in inserts for r in i.rows]
                    insert_rows(conn, rows)
                    self._top = max(self._top, max(i.last for i in inserts))
                deletes = [i for fn, _, _ in group if isinstance(fn, _Delete) for i in fn.ids]
                if deletes:
                    delete_ids(conn, deletes)
                for fn, _, _ in group:
                    results.append(None if isinstance(fn, (_Insert, _Delete)) else fn(conn))
                top = self._top
                if top > self._saved_top:
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'last_id'", (str(top),))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:  # every caller of the group gets it; the writer goes on  # noqa: BLE001
            self.healthy = False
            self._resolve(group, None, exc)
            return
        self.commits += 1
        self.unsynced_commits += not sync
        self.healthy = True
        self._saved_top = top
        if self._recount is not None or self._delta:
            counts = dict(self._recount if self._recount is not None else self._dlq)
            for pattern, n in self._delta.items():
                counts[pattern] = counts.get(pattern, 0) + n
            self._dlq = {p: n for p, n in counts.items() if n > 0}
        self._resolve(group, results, None)

    @staticmethod
    def _resolve(group: list[_Op], results: list[Any] | None, exc: Exception | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for n, (_, fut, loop) in enumerate(group):
            value = results[n] if results is not None else None
            by_loop.setdefault(loop, []).append((fut, value))
        for loop, pairs in by_loop.items():  # one wake-up per loop, not per caller
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, pairs, exc)


def _dlq_row(d: DeadLetter) -> tuple[str, str, str | None, str, int, float, bytes]:
    m = d.message
    return (m.message_id, d.pattern, d.queue, d.reason, d.attempts, d.failed_at, encode(m))


def _count_dlq(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT pattern, count(*) FROM dlq GROUP BY pattern").fetchall()
    return dict(rows)


class MemoryStore(Store):
    """`buffer: memory`: nothing survives a restart; dead letters are kept in a list."""

    durable = False

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.commits = 0
        self._next_id = 1
        self._depth: Counter[str] = Counter()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def pending(self) -> list[Item]:
        return []

    async def enqueue(self, entries: list[tuple[str, Message]], early: Early | None = None) -> list[Item]:
        start = self._next_id
        self._next_id += len(entries)
        items = [Item(i, q, m) for i, (q, m) in enumerate(entries, start)]
        if early is not None:
            early(items)
        return items

    async def ack(self, ids: list[int]) -> None:
        return None

    async def dead_letter(self, letters: list[DeadLetter], ids: Sequence[int] = ()) -> None:
        self.letters.extend(letters)
        self._depth.update(d.pattern for d in letters)

    async def take_redrives(self) -> list[DeadLetter]:
        return []

    def dlq_depth(self, pattern: str | None = None) -> int:
        return len(self.letters) if pattern is None else self._depth[pattern]


class DlqAdmin:
    """Inspect, redrive and purge dead letters in a wireway database (safe while it runs)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatabaseNotFound(
                f"no wireway database at {self.path} (is --data-dir right? it is created "
                "by the first run of a pattern with buffer: durable)"
            )
        self._conn = _connect(self.path.resolve().as_uri() + "?mode=rw", uri=True)
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreError(f"{self.path} is not a wireway database: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> DlqAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def list(self, pattern: str | None = None, limit: int = 100) -> builtins.list[dict[str, Any]]:
        """Dead letters, newest first."""
        where, params = _where(pattern, None)
        rows = self._conn.execute(
            f"SELECT {_DLQ_COLUMNS} FROM dlq{where} ORDER BY id DESC LIMIT ?", (*params, limit)
        ).fetchall()
        return [dict(row) for row in rows]

    def show(self, message_id: str) -> dict[str, Any] | None:
        """The newest dead letter with this message id, plus its envelope (wire names)."""
        row = self._conn.execute(
            f"SELECT {_DLQ_COLUMNS}, body FROM dlq WHERE message_id = ? ORDER BY id DESC LIMIT 1",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["message"] = msgspec.json.decode(out.pop("body"))
        return out

    def redrive(self, pattern: str | None = None, message_id: str | None = None) -> int:
        """Move matching dead letters to the redrive table (one transaction); the count."""
        where, params = _where(pattern, message_id)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO redrive(message_id, pattern, queue, body, attempts)"
                f" SELECT message_id, pattern, queue, body, attempts FROM dlq{where} ORDER BY id",
                params,
            )
            return conn.execute(f"DELETE FROM dlq{where}", params).rowcount

    def purge(self, pattern: str | None = None) -> int:
        """Delete dead letters for good; the count."""
        where, params = _where(pattern, None)
        with self._transaction() as conn:
            return conn.execute(f"DELETE FROM dlq{where}", params).rowcount

    def depth(self) -> dict[str, int]:
        """Dead letters per pattern."""
        rows = self._conn.execute(
            "SELECT pattern, count(*) FROM dlq GROUP BY pattern ORDER BY pattern"
        ).fetchall()
        return {row[0]: row[1] for row in rows}


def _where(pattern: str | None, message_id: str | None) -> tuple[str, tuple[str, ...]]:
    clauses: builtins.list[str] = []
    params: builtins.list[str] = []
    if pattern is not None:
        clauses.append("pattern = ?")
        params.append(pattern)
    if message_id is not None:
        clauses.append("message_id = ?")
        params.append(message_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)
