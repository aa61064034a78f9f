"""Options of the `schedule` input."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

from wireway.connectors.durations import seconds
from wireway.connectors.schedule.cron import Cron, CronError


class ScheduleInputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Emits a tick message on a cron schedule or at a fixed interval: the start of a
    batch pattern ("every night at 02:00 export yesterday's readings").

    Give either `cron:` (five fields, minute hour day-of-month month day-of-week, with
    lists `1,15`, ranges `9-17`, steps `*/10`, names `MON-FRI`/`JAN`, or `@hourly`,
    `@daily`, `@weekly`, `@monthly`, `@yearly`), read in `timezone`, or `interval:`
    (seconds, or `30s`, `5m`, `1h`).

    Each tick's payload is `{"schedule": <input name>, "scheduled": <the scheduled
    time, RFC 3339 in the schedule's zone>, "n": <tick number: 0, 1, 2, ...>}`; its
    `timestamp` is the scheduled time and its `messageId` is derived from the name and
    that time, so a tick delivered twice is the same message (a `dedupe` step or an
    idempotent output recognises it).

    The last tick's time is stored with the tick itself, so a restart goes on from
    there: with `catch_up: false` the ticks missed while wireway was down are skipped
    and the next one fires on time; with `catch_up: true` every missed tick fires at
    once on start (oldest first), then the schedule goes on. Ticks missed while running
    (a machine suspended, a full buffer) follow the same rule.

    In a daylight-saving zone a wall-clock time that does not exist (clocks going
    forward) does not fire, and the hour that repeats (clocks going back) fires once.
    """

    cron: Annotated[
        str | None,
        Meta(description="cron expression (5 fields or @hourly/@daily/...)", examples=["0 2 * * *"]),
    ] = None
    interval: Annotated[
        float | str | None,
        Meta(description="seconds between ticks, or 30s / 5m / 1h (instead of `cron`)"),
    ] = None
    timezone: Annotated[str, Meta(description="IANA zone the cron times are read in")] = "UTC"
    catch_up: Annotated[bool, Meta(description="fire the ticks missed while down, on start")] = False
    count: Annotated[int, Meta(ge=0, description="stop after this many ticks in all (0: never)")] = 0

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give either `cron` or `interval` - at `$.cron`")
        if self.cron is not None:
            try:
                Cron(self.cron)
            except CronError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc} - at `$.cron`") from None
        if self.interval is not None:
            seconds(self.interval, "interval")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r} - at `$.timezone`") from None
