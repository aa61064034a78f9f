"""The DLQ admin: list, show, redrive and purge dead letters in a durable buffer file.

`wireway dlq` uses it from another process while an instance may be running on the
same file: every change is one short IMMEDIATE transaction, and a redrive only moves
letters to the `redrive` table, where a running instance picks them up (Store.take_redrives).
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from wireway.runtime.buffer_file import connect
from wireway.runtime.store import DatabaseNotFound, StoreError

_DLQ_COLUMNS = "id, message_id, pattern, queue, reason, attempts, failed_at"


class DlqAdmin:
    """Inspect, redrive and purge dead letters in a wireway database (safe while it runs)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatabaseNotFound(
                f"no wireway database at {self.path} (is --data-dir right? it is created "
                "by the first run of a pattern with buffer: durable)"
            )
        self._conn = connect(self.path.resolve().as_uri() + "?mode=rw", uri=True)
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
