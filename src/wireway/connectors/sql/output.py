"""The `sql` output: insert messages as rows of a SQLite or PostgreSQL table.

The table is described when the output opens (`columns`), each batch becomes rows
through the table's `Plan` (`plan`, `convert`) and reaches the table the cheapest
way it can (`write`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from wireway.config.model import Interface, Pattern
from wireway.connectors.base import Output
from wireway.connectors.sql.base import Database, RejectedData
from wireway.connectors.sql.columns import describe
from wireway.connectors.sql.config import SqlOutputConfig
from wireway.connectors.sql.convert import Unfit
from wireway.connectors.sql.db import open_database
from wireway.connectors.sql.migrate import apply_set
from wireway.connectors.sql.plan import Plan
from wireway.connectors.sql.write import RowWriter
from wireway.envelope import Message
from wireway.errors import ConnectorError, NotConnected
from wireway.observability import logging as log
from wireway.registry import register_output

logger = log.get("sql")
WATCH_INTERVAL = 5.0  # seconds between liveness checks (and reconnects) of the database


@register_output("sql", config=SqlOutputConfig)
class SqlOutput(Output):
    """Insert messages as rows of a SQL table (SQLite or PostgreSQL).

    `db` is the output's `Database`, for an application to share; it opens lazily and
    is closed when the output closes.
    """

    config: SqlOutputConfig

    def __init__(self, config: SqlOutputConfig, iface: Interface, pattern: Pattern) -> None:
        super().__init__(config, iface, pattern)
        # the URL is checked now; an empty one names a file in the engine's data folder,
        # which the engine sets before `open` (see there)
        self.db: Database = open_database(config.url, data_dir=self.data_dir, own_schema=config.schema)
        self.plan: Plan | None = None
        self.up = False
        self.written = 0
        self._preparing = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        self.writer = RowWriter(self.db)

    async def open(self) -> None:
        """Connect, migrate and describe the table; a database that is down is retried later."""
        self.db = open_database(self.config.url, data_dir=self.data_dir, own_schema=self.config.schema)
        self.writer = RowWriter(self.db)
        try:
            await self.prepare()
        except NotConnected as exc:
            logger.warning("database unavailable; will retry", output=self.name, error=str(exc))
        self._watch = asyncio.create_task(self.watch(), name=f"wireway[{self.name}].ping")

    async def prepare(self) -> Plan:
        async with self._preparing:
            if self.plan is not None:
                return self.plan
            try:
                await self.db.open()
                if self.config.migrate is not None:
                    await apply_set(self.db, self.config.migrate, self.config.table)
                self.plan = Plan(self.config, self.db.dialect, await describe(self.db, self.config.table))
            except NotConnected:
                self.up = False
                raise
            self.up = True
            logger.info("sql output ready", output=self.name, url=self.db.url, table=self.config.table)
            return self.plan

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            self.up = await self.db.ping()
            if self.up and self.plan is None:
                with contextlib.suppress(ConnectorError):
                    await self.prepare()

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self.db.close()

    def health(self) -> dict[str, str]:
        return {"storage": "up" if self.up else "down"}

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        plan = self.plan or await self.prepare()
        now = datetime.now(UTC)
        refused: dict[int, str] = {}
        good: list[tuple[int, list[tuple[Any, ...]]]] = []
        for i, msg in enumerate(batch):
            try:
                good.append((i, plan.rows(msg, now)))
            except Unfit as exc:
                refused[i] = str(exc)
        try:
            if good:
                try:
                    await self.writer.insert(plan, [rows for _, rows in good])
                except RejectedData as exc:
                    logger.warning(
                        "batch refused by the database; writing message by message",
                        output=self.name,
                        error=str(exc),
                    )
                    refused.update(await self.writer.insert_each(plan, good))
        except NotConnected:
            self.up = False
            raise
        self.up = True
        self.written += sum(len(rows) for i, rows in good if i not in refused)
        return refused or None
