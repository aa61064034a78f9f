"""How a batch of rows reaches the table: the write strategies of the `sql` output.

Every batch is written in ONE statement or transaction. PostgreSQL takes the cheapest
way the batch allows: one text COPY (a batch of at least COPY_MIN_MESSAGES messages
whose values COPY writes exactly), else one `INSERT ... SELECT` from a jsonb array of
the rows (one statement, its own transaction), else the INSERT bound once per row
(`executemany` in one transaction, which is also SQLite's way). A batch the database refuses is
written again message by message, each in a savepoint, so that only the refused
messages are left out.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from wireway.connectors.sql.base import Database, RejectedData
from wireway.connectors.sql.plan import Plan
from wireway.connectors.sql.postgresql import PostgresDatabase

COPY_PAUSE = 60.0  # seconds without COPY after a batch met rows already stored
# Below this many messages a batch is one INSERT: a COPY takes two round trips and
# more of the client's CPU per call in asyncpg (the event loop's, where wireway has
# least to spare), while it saves PostgreSQL nothing for tiny batches.
COPY_MIN_MESSAGES = 8

Rows = list[tuple[Any, ...]]


class RowWriter:
    """Writes batches of rows (grouped by message) into one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._copy_after = 0.0  # COPY is skipped until then (monotonic)

    async def insert(self, plan: Plan, messages: list[Rows]) -> None:
        """Every row in one statement or transaction (see the module docstring)."""
        db = self.db
        if isinstance(db, PostgresDatabase):
            if (
                plan.copy is not None
                and len(messages) >= COPY_MIN_MESSAGES
                and time.monotonic() >= self._copy_after
            ):
                data = plan.copy.encode(messages)
                if data is not None and await self.copy(db, plan, data):
                    return
            rows = [row for group in messages for row in group]
            document = plan.json_rows(rows)
            if document is not None:
                # one statement is its own transaction: no BEGIN / COMMIT round trips
                async with db.acquire() as conn:
                    await conn.execute(plan.from_json, document)
                return
        await db.executemany(plan.insert, [row for group in messages for row in group])

    async def copy(self, db: PostgresDatabase, plan: Plan, data: bytes) -> bool:
        """One COPY of the batch; False when a row was already there and `on_conflict: ignore`
        wants it skipped, which COPY cannot do: then the caller takes the INSERT path."""
        assert plan.copy is not None
        schema, table = plan.copy_table
        async with db.acquire() as conn:
            try:
                await conn.copy_to_table(
                    table,
                    schema_name=schema,
                    columns=plan.copy.names,
                    source=memoryview(data),  # bytes would be taken for a file name
                    format="text",
                )
            except asyncpg.UniqueViolationError:
                if plan.config.on_conflict != "ignore":
                    raise
                # a redelivery: this batch and those of the next minute skip COPY (more
                # are likely to follow, each would cost a failed COPY)
                self._copy_after = time.monotonic() + COPY_PAUSE
                return False
        return True

    async def insert_each(self, plan: Plan, good: list[tuple[int, Rows]]) -> dict[int, str]:
        """One savepoint per message, in one transaction: only refused messages are left out.

        Returns the refused messages' positions and reasons.
        """
        refused: dict[int, str] = {}
        async with self.db.transaction() as tx:
            for i, rows in good:
                try:
                    async with tx.savepoint():
                        await tx.executemany(plan.insert, rows)
                except RejectedData as exc:
                    refused[i] = f"refused by the database: {exc}"
        return refused
