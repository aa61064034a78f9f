"""The `schedule` input: a tick message on a cron schedule or at an interval, the last
tick's time stored with the tick so a restart knows what it missed."""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from wireway.config.model import Interface, Pattern
from wireway.connectors.base import Input, InputContext
from wireway.connectors.durations import seconds
from wireway.connectors.schedule.config import ScheduleInputConfig
from wireway.connectors.schedule.cron import Cron
from wireway.envelope import Message, stable_id
from wireway.observability import logging as log
from wireway.registry import register_input

logger = log.get("schedule")

BATCH = 1000  # missed ticks per ingest call when catching up
LONGEST_SLEEP = 60.0  # seconds: a wall-clock change (NTP, a suspended machine) is seen soon
RETRY_SECONDS = 1.0  # after an ingest call failed


class Stored(msgspec.Struct):
    """What the input keeps with each tick: the last scheduled time and the next number."""

    last: str
    n: int


def rfc3339(when: datetime) -> str:
    """RFC 3339 with the fraction only when there is one; UTC as `Z`."""
    text = when.isoformat(timespec="microseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


@register_input("schedule", config=ScheduleInputConfig)
class ScheduleInput(Input):
    """Emit a tick message on a cron expression or an interval."""

    keeps_position = True
    formats = ("json",)  # it reads no bytes: the ticks are values
    config: ScheduleInputConfig

    def __init__(self, config: ScheduleInputConfig, iface: Interface, pattern: Pattern) -> None:
        super().__init__(config, iface, pattern)
        self.zone = ZoneInfo(config.timezone)
        self.cron = Cron(config.cron) if config.cron is not None else None
        self.step = timedelta(seconds=seconds(config.interval, "interval")) if config.interval else None
        self.last: datetime | None = None
        self.n = 0
        self.task: asyncio.Task[None] | None = None

    def after(self, when: datetime) -> datetime:
        """The first scheduled time after `when`."""
        if self.cron is not None:
            return self.cron.next_after(when, self.zone)
        assert self.step is not None
        return when + self.step

    def skip_to(self, due: datetime, current: datetime) -> datetime:
        """The first scheduled time after `current`, for a `due` time already past
        (an interval keeps its phase)."""
        if self.cron is not None:
            return self.cron.next_after(max(due, current), self.zone)
        assert self.step is not None
        steps = math.floor((current - due) / self.step) + 1
        return due + steps * self.step

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        stored = ctx.position(self.name)
        if stored is not None:
            try:
                kept = msgspec.json.decode(stored, type=Stored)
                self.last, self.n = datetime.fromisoformat(kept.last), kept.n
            except (msgspec.DecodeError, ValueError):
                logger.warning("stored schedule position unreadable, starting afresh", input=self.name)
        self.task = asyncio.create_task(self.run(), name=f"wireway[{self.name}].schedule")
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def finished(self) -> bool:
        return self.config.count > 0 and self.n >= self.config.count

    async def run(self) -> None:
        current = now()
        due = self.after(self.last if self.last is not None else current)
        if due <= current and not self.config.catch_up:
            skipped = due
            due = self.skip_to(due, current)
            logger.info("missed ticks skipped", input=self.name, first=rfc3339(skipped))
        while not self.finished():
            await self.sleep_until(due)
            current = now()
            ticks = [due]
            room = self.config.count - self.n if self.config.count else BATCH
            while self.config.catch_up and len(ticks) < min(room, BATCH):
                following = self.after(ticks[-1])
                if following > current:
                    break
                ticks.append(following)
            await self.fire(ticks)
            due = self.after(ticks[-1])
            if due <= now() and not self.config.catch_up:
                due = self.skip_to(due, now())
        self.state = "finished"

    @staticmethod
    async def sleep_until(due: datetime) -> None:
        """Sleep in steps of at most LONGEST_SLEEP, reading the wall clock after each."""
        for _ in range(1_000_000):  # bounded: each step ends at `due` or LONGEST_SLEEP later
            wait = (due - now()).total_seconds()
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, LONGEST_SLEEP))

    async def fire(self, ticks: list[datetime]) -> None:
        """Ingest the ticks and store the last one's time with them (retried until kept)."""
        msgs = [self.tick(when, self.n + i) for i, when in enumerate(ticks)]
        kept = Stored(rfc3339(ticks[-1].astimezone(UTC)), self.n + len(ticks))
        position = (self.name, msgspec.json.encode(kept))
        while True:
            try:
                await self.ctx.ingest(msgs, source=self.name, position=position)
                break
            except Exception as exc:  # noqa: BLE001  (the buffer refused: try the same ticks again)
                logger.error("could not keep ticks, retrying", input=self.name, error=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
        self.last, self.n = ticks[-1], kept.n

    def tick(self, when: datetime, number: int) -> Message:
        utc = when.astimezone(UTC)
        payload: dict[str, Any] = {
            "schedule": self.name,
            "scheduled": rfc3339(when.astimezone(self.zone) if self.cron else utc),
            "n": number,
        }
        return Message(
            message_id=stable_id("schedule", self.name, utc.isoformat(timespec="microseconds")),
            timestamp=rfc3339(utc),
            payload=payload,
            source=self.name,
        )
