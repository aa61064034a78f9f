"""Cron expressions: five fields (minute hour day-of-month month day-of-week) and the
`@hourly`-style shorthands, and the next time one fires in a time zone.

Each field is a comma list of `*`, `N`, `A-B`, each with an optional `/STEP`
(`A/STEP` runs from A to the field's end); months and weekdays also take names
(`JAN`-`DEC`, `SUN`-`SAT`, any case). Weekday 0 and 7 are both Sunday. As in Vixie
cron, when both day fields are restricted a day matches if either does.

Wall-clock times are in the schedule's zone. A time that does not exist (the hour
skipped when clocks go forward) does not fire; the hour that repeats when clocks go
back fires once, in its first pass (a wall-clock minute is one tick).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, {name: n for n, name in enumerate(MONTHS, 1)}),
    _Field("day of week", 0, 7, {name: n for n, name in enumerate(WEEKDAYS)}),
)
_ONE_MINUTE = timedelta(minutes=1)
_SEARCH_LIMIT = 200_000  # steps of the search below: far more than 28 years of jumps


class CronError(ValueError):
    """A cron expression that cannot be parsed, or that never fires."""


def _number(text: str, field: _Field) -> int:
    value = field.names.get(text.upper())
    if value is None:
        if not text.isdigit():
            known = f" or a name ({', '.join(field.names)})" if field.names else ""
            raise CronError(f"{field.name}: `{text}` is not a number{known}")
        value = int(text)
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name}: {value} is out of range {field.low}-{field.high}")
    return value


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field.name}: step `{step_text}` must be a positive number")
            step = int(step_text)
        if body == "*":
            low, high = field.low, field.high
        elif "-" in body:
            first, _, last = body.partition("-")
            low, high = _number(first, field), _number(last, field)
            if low > high:
                raise CronError(f"{field.name}: range `{body}` runs backwards")
        elif body:
            low = _number(body, field)
            high = field.high if slash else low
        else:
            raise CronError(f"{field.name}: empty item in `{text}`")
        values.update(range(low, high + 1, step))
    return frozenset(values)


class Cron:
    """A parsed cron expression.

    Raises:
        CronError: the text is not five valid fields or a known shorthand, or its days
            never occur (`0 0 30 2 *`).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        expanded = SHORTHANDS.get(text.strip().lower(), text) if text.strip().startswith("@") else text
        if expanded.strip().startswith("@"):
            raise CronError(f"unknown shorthand `{text.strip()}` (known: {', '.join(SHORTHANDS)})")
        parts = expanded.split()
        if len(parts) != 5:
            raise CronError(
                f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
            )
        sets = [_parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)]
        self.minutes, self.hours, self.days, self.months, weekdays = sets
        self.weekdays = frozenset(d % 7 for d in weekdays)  # 7 is Sunday too
        self.any_day = parts[2].startswith("*")
        self.any_weekday = parts[4].startswith("*")
        if self.any_weekday and not any(
            day <= calendar.monthrange(2000, month)[1] for month in self.months for day in self.days
        ):
            raise CronError("these days never occur in these months")

    def day_matches(self, day: datetime) -> bool:
        """Whether the schedule fires on this calendar day (month and the two day fields)."""
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        on_weekday = (day.weekday() + 1) % 7 in self.weekdays  # cron counts from Sunday
        if self.any_day or self.any_weekday:
            return in_month and on_weekday
        return in_month or on_weekday

    def matches(self, wall: datetime) -> bool:
        """Whether the schedule fires at this wall-clock minute (seconds are ignored)."""
        return wall.minute in self.minutes and wall.hour in self.hours and self.day_matches(wall)

    def _next_wall(self, wall: datetime) -> datetime:
        """The first matching wall-clock minute at or after `wall` (naive, whole minute)."""
        for _ in range(_SEARCH_LIMIT):
            if wall.month not in self.months:
                year, month = (wall.year + 1, 1) if wall.month == 12 else (wall.year, wall.month + 1)
                wall = wall.replace(year=year, month=month, day=1, hour=0, minute=0)
            elif not self.day_matches(wall):
                wall = (wall + timedelta(days=1)).replace(hour=0, minute=0)
            elif wall.hour not in self.hours:
                wall = (wall + timedelta(hours=1)).replace(minute=0)
            elif wall.minute not in self.minutes:
                wall += _ONE_MINUTE
            else:
                return wall
        raise CronError(f"`{self.text}` does not fire in the years searched")

    def next_after(self, after: datetime, zone: tzinfo = UTC) -> datetime:
        """The first time strictly after `after` (an aware datetime) that the schedule
        fires in `zone`, as an aware datetime in that zone."""
        # instants compared in UTC: two times of one zone compare by wall clock, fold ignored
        instant = after.astimezone(UTC)
        wall = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0) + _ONE_MINUTE
        for _ in range(_SEARCH_LIMIT):
            wall = self._next_wall(wall)
            when = wall.replace(tzinfo=zone)  # fold 0: the first pass of a repeated hour
            if _exists(when) and when.astimezone(UTC) > instant:
                return when
            wall += _ONE_MINUTE
        raise CronError(f"`{self.text}` does not fire in the years searched")


def _exists(when: datetime) -> bool:
    """False for a wall-clock time in a gap (clocks going forward skip it)."""
    back = when.astimezone(UTC).astimezone(when.tzinfo)
    return back.replace(tzinfo=None) == when.replace(tzinfo=None)
