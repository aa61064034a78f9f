"""The cron parser: fields, names, shorthands, errors, the next fire time (examples,
time zones with daylight saving, and hypothesis properties against a plain search)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wireway.connectors.schedule.cron import Cron, CronError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(text: str, zone: ZoneInfo | None = None) -> datetime:
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=zone) if zone is not None and when.tzinfo is None else when


def test_fields_expand_lists_ranges_steps_and_names() -> None:
    """Each field form gives the values cron gives it."""
    cron = Cron("*/15 9-17/4 1,15 JAN-mar mon-FRI")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {9, 13, 17}
    assert cron.days == {1, 15}
    assert cron.months == {1, 2, 3}
    assert cron.weekdays == {1, 2, 3, 4, 5}
    assert Cron("5/20 * * * *").minutes == {5, 25, 45}
    assert Cron("0 0 * * 7").weekdays == {0}  # 7 is Sunday, as 0


@pytest.mark.parametrize(
    ("shorthand", "same"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@ANNUALLY", "0 0 1 1 *"),
    ],
)
def test_shorthands(shorthand: str, same: str) -> None:
    """A shorthand fires exactly when its five fields do."""
    start = datetime(2026, 12, 4, 14, 7, tzinfo=UTC)
    assert Cron(shorthand).next_after(start) == Cron(same).next_after(start)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range"),
        ("* * 0 * *", "day of month: 0 is out of range"),
        ("* * * 13 *", "month: 13 is out of range"),
        ("* * * * 8", "day of week: 8 is out of range"),
        ("*/0 * * * *", "step `0`"),
        ("10-5 * * * *", "runs backwards"),
        ("* * * FOO *", "`FOO` is not a number or a name"),
        ("MON * * * *", "minute: `MON` is not a number"),
        ("1,,2 * * * *", "empty item"),
        ("0 0 31 4,6,9,11 *", "never occur"),
        ("0 0 30 FEB *", "never occur"),
        ("@reboot", "unknown shorthand"),
    ],
)
def test_bad_expressions_say_what_is_wrong(text: str, words: str) -> None:
    """Each mistake is a CronError naming the field and the value."""
    with pytest.raises(CronError, match=None) as caught:
        Cron(text)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("0 2 * * *", "2026-12-04T14:00:00+00:00", "2026-12-05T02:00:00+00:00"),
        ("0 2 * * *", "2026-12-05T01:59:59+00:00", "2026-12-05T02:00:00+00:00"),
        ("0 2 * * *", "2026-12-05T02:00:00+00:00", "2026-12-06T02:00:00+00:00"),  # strictly after
        ("*/15 9-17 * * MON-FRI", "2026-12-04T17:50:00+00:00", "2026-12-07T09:00:00+00:00"),
        ("0 0 29 2 *", "2026-03-01T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
        ("0 0 31 * *", "2026-04-01T00:00:00+00:00", "2026-05-31T00:00:00+00:00"),
        # both day fields restricted: either one matches (the 13th, or any Friday)
        ("0 12 13 * FRI", "2026-11-14T00:00:00+00:00", "2026-11-20T12:00:00+00:00"),
        ("0 0 1 1 *", "2026-12-31T23:59:00+00:00", "2027-01-01T00:00:00+00:00"),
    ],
)
def test_next_after_examples(text: str, after: str, expected: str) -> None:
    """Known next fire times in UTC."""
    assert Cron(text).next_after(at(after)) == at(expected)


def test_time_zone_wall_clock() -> None:
    """02:00 in Berlin is 01:00 UTC in winter and 00:00 UTC in summer."""
    cron = Cron("0 2 * * *")
    winter = cron.next_after(at("2026-12-04T12:00:00+00:00"), BERLIN)
    summer = cron.next_after(at("2026-07-04T12:00:00+00:00"), BERLIN)
    assert winter.astimezone(UTC) == at("2026-12-05T01:00:00+00:00")
    assert summer.astimezone(UTC) == at("2026-07-05T00:00:00+00:00")


def test_skipped_hour_does_not_fire() -> None:
    """02:30 does not exist in Berlin on 2026-03-29 (clocks go 02:00 -> 03:00)."""
    fire = Cron("30 2 * * *").next_after(at("2026-03-28T12:00:00+00:00"), BERLIN)
    assert fire == at("2026-03-30T02:30:00", BERLIN)
    hourly = Cron("0 * * * *").next_after(at("2026-03-29T01:30:00", BERLIN), BERLIN)
    assert hourly == at("2026-03-29T03:00:00", BERLIN)


def test_repeated_hour_fires_once() -> None:
    """01:30 happens twice in New York on 2026-11-01; it fires on the first pass only."""
    cron = Cron("30 1 * * *")
    first = cron.next_after(at("2026-11-01T00:00:00", NEW_YORK), NEW_YORK)
    assert first.astimezone(UTC) == at("2026-11-01T05:30:00+00:00")
    again = cron.next_after(first, NEW_YORK)
    assert again.astimezone(UTC) == at("2026-11-02T06:30:00+00:00")
    # from inside the second pass, the first pass's minutes are not fired again
    inside = datetime(2026, 11, 1, 1, 10, tzinfo=NEW_YORK, fold=1)
    assert cron.next_after(inside, NEW_YORK).date().isoformat() == "2026-11-02"


# ---- properties: the next fire time against a plain minute-by-minute search ---------


def field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    ranges = st.tuples(number, number).map(lambda p: f"{min(p)}-{max(p)}")
    item = st.one_of(
        st.just("*"),
        number.map(str),
        ranges,
        st.builds(lambda r, s: f"{r}/{s}", st.one_of(st.just("*"), ranges), st.integers(1, high)),
    )
    return st.lists(item, min_size=1, max_size=3).map(",".join)


expressions = st.tuples(field(0, 59), field(0, 23), field(1, 28), field(1, 12), field(0, 7)).map(" ".join)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)


def plain_search(cron: Cron, after: datetime, until: datetime) -> datetime | None:
    """The first matching minute after `after` (UTC), checking days, then hours, then
    minutes one by one: a slow search the parser's jumps must agree with."""
    minute = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute <= until:
        if not cron.day_matches(minute):
            minute = (minute + timedelta(days=1)).replace(hour=0, minute=0)
        elif minute.hour not in cron.hours:
            minute = (minute + timedelta(hours=1)).replace(minute=0)
        elif minute.minute in cron.minutes:
            return minute
        else:
            minute += timedelta(minutes=1)
    return None


@settings(max_examples=300, deadline=None)
@given(expressions, instants)
def test_next_fire_matches_and_no_earlier_minute_does(text: str, after: datetime) -> None:
    """The next fire time is after the start, matches the expression, and no minute
    between the start and it matches."""
    cron = Cron(text)
    fire = cron.next_after(after)
    assert fire > after
    assert fire.second == 0
    assert fire.microsecond == 0
    assert cron.matches(fire)
    assert plain_search(cron, after, fire) == fire


@settings(max_examples=150, deadline=None)
@given(expressions, instants, st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Kolkata"]))
def test_next_fire_in_a_zone_matches_its_wall_clock(text: str, after: datetime, zone_name: str) -> None:
    """In any zone the fire time is later than the start and its wall-clock minute matches."""
    zone = ZoneInfo(zone_name)
    cron = Cron(text)
    fire = cron.next_after(after, zone)
    assert fire > after
    assert cron.matches(fire.astimezone(zone))
    assert cron.next_after(fire, zone) > fire
