"""When the durable buffer cannot take more: its disk is full, or it reached `buffer_max_bytes`.

Both push back instead of failing: the outbox refuses new messages with
`BackpressureError` (HTTP inputs answer 503 with Retry-After), `/ready` names the
buffer, one log line marks the start of an episode and one its end. A full disk is
seen as SQLite's SQLITE_FULL ("database or disk is full"), an ENOSPC write error, or
an I/O error while the disk has no room left. Nothing is lost or damaged by it: the
failed transaction is rolled back, and the sender, who got no acknowledgement, sends
again.

While full, one write a `retry_after` tries again (a probe) and the others are
refused at once; the writer thread also looks at the disk's free space every
`retry_after` when idle, so `/ready` recovers without waiting for the next message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from wireway.errors import BackpressureError
from wireway.observability import logging as log
from wireway.observability.metrics import BUFFER_BYTES, BUFFER_FULL

logger = log.get("buffer")

MEASURE_SECONDS = 1.0  # between measures of the file's size, without max_bytes
RETRY_AFTER = 2.0  # seconds a refused sender is asked to wait; also the probe interval
LOW_FREE = 1 << 20  # bytes: an I/O error with less free than this on the disk means it is full
Why = Literal["disk", "max_bytes"]


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still add to the disk holding `path`'s folder."""
    st = os.statvfs(path.parent)
    return st.f_bavail * st.f_frsize


def is_full_error(exc: BaseException, path: Path) -> bool:
    """Whether `exc` (from writing the buffer file) means its disk has no room left."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc):
        return True
    if (code is not None and code & 0xFF == sqlite3.SQLITE_IOERR) or "disk I/O error" in str(exc):
        try:
            return free_bytes(path) < LOW_FREE
        except OSError:
            return False
    return False


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes the database uses: its pages less the free ones (a file does not shrink)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def buffer_options(settings: Iterable[Any]) -> dict[str, Any]:
    """The one durable buffer's options from the patterns' settings: the smallest
    `buffer_max_bytes` any of them sets, and `refuse` if any asks for it."""
    settings = list(settings)
    limits = [s.buffer_max_bytes for s in settings if s.buffer_max_bytes > 0]
    refuse = any(s.on_damaged_buffer == "refuse" for s in settings)
    return {"max_bytes": min(limits, default=0), "on_damaged": "refuse" if refuse else "move_aside"}


class Fullness:
    """Whether the buffer file has room, and why not; shared by the event loop (which
    refuses) and the writer thread (which finds out)."""

    def __init__(self, path: Path, max_bytes: int = 0, retry_after: float = RETRY_AFTER) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.retry_after = retry_after
        self.why: Why | None = None
        self.detail = ""
        self.used = 0  # bytes in use in the file, as last measured
        self._next_probe = 0.0
        self._measured = 0.0
        self._lock = threading.Lock()

    @property
    def reason(self) -> str | None:
        """Why the buffer takes nothing now (None: it has room)."""
        if self.why is None:
            return None
        return f"full: {self.detail}"

    def refuse(self) -> BackpressureError | None:
        """The error to refuse an enqueue with now, or None to go ahead (there is room,
        or the disk was full and it is time for a write to try again)."""
        with self._lock:
            if self.why is None:
                return None
            if self.why == "disk" and time.monotonic() >= self._next_probe:
                self._next_probe = time.monotonic() + self.retry_after
                return None
            return self.error()

    def error(self) -> BackpressureError:
        return BackpressureError(self.path.name, self.retry_after, self.detail or "no room")

    def disk_full(self, exc: BaseException) -> None:
        """A write failed for want of disk space."""
        self._start("disk", f"no space left on the disk of {self.path} ({exc})")

    def measured(self, used: int) -> None:
        """The file uses `used` bytes now (writer thread, after a commit)."""
        self.used = used
        BUFFER_BYTES.set(used)
        if self.max_bytes and used >= self.max_bytes:
            self._start("max_bytes", f"{self.path} uses {used} bytes, buffer_max_bytes is {self.max_bytes}")
        elif self.why == "max_bytes":
            self._end()

    def committed(self, conn: sqlite3.Connection, inserted: bool) -> None:
        """After a commit (writer thread): one that inserted ends a full disk's episode
        (deletes alone may fit in the WAL's old room on a full disk); the file is
        measured after each commit under `max_bytes`, else once a MEASURE_SECONDS."""
        if inserted and self.why == "disk":
            self._end()
        now = time.monotonic()
        if self.max_bytes or now - self._measured >= MEASURE_SECONDS:
            self._measured = now
            with contextlib.suppress(sqlite3.Error):
                self.measured(used_bytes(conn))

    def probe(self) -> None:
        """The writer is idle while the disk is full: has room come back?"""
        if self.why != "disk":
            return
        try:
            room = free_bytes(self.path) >= LOW_FREE
        except OSError:
            return
        if room:
            self._end()

    def _start(self, why: Why, detail: str) -> None:
        with self._lock:
            started = self.why is None
            self.why, self.detail = why, detail
            self._next_probe = time.monotonic() + self.retry_after
        if started:
            BUFFER_FULL.labels(why).inc()
            logger.error(
                "buffer full: inputs are pushed back until there is room",
                buffer=str(self.path),
                reason=detail,
                retry_after=self.retry_after,
                what_to_do="free disk space (or raise settings.buffer_max_bytes); "
                "ingestion resumes by itself",
            )

    def _end(self) -> None:
        with self._lock:
            if self.why is None:
                return
            why, self.why, self.detail = self.why, None, ""
        logger.warning("buffer has room again: ingestion resumes", buffer=str(self.path), was=why)
