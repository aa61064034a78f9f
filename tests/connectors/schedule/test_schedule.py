"""The schedule input in a running engine: interval ticks, ids from the scheduled time,
a restart that catches up (or skips) what it missed, and `wireway check`."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import wireway
from support import engine_from, eventually, written_lines
from wireway.config import load_pattern
from wireway.config.model import Pattern
from wireway.connectors.schedule.input import ScheduleInput
from wireway.envelope import stable_id


def pattern(entry: str, out: Path) -> str:
    return f"""
pattern: {{name: ticks, type: batch}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: "{out}"}}
"""


def ticks(path: Path) -> list[dict[str, Any]]:
    return written_lines(path)


def scheduled(tick: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(tick["payload"]["scheduled"])


async def test_interval_ticks_arrive_with_ids_from_their_time(tmp_path: Path) -> None:
    """Three ticks 0.1 s apart, numbered, named, ids derived from name and time; then it stops."""
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern("{type: schedule, name: beat, interval: 100ms, count: 3}", out)):
        await eventually(lambda: len(ticks(out)) >= 3)
        await asyncio.sleep(0.3)  # `count: 3`: no fourth tick comes
    got = ticks(out)
    assert [t["payload"]["n"] for t in got] == [0, 1, 2]
    assert {t["payload"]["schedule"] for t in got} == {"beat"}
    times = [scheduled(t) for t in got]
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(milliseconds=100)] * 2
    for tick, when in zip(got, times, strict=True):
        assert tick["messageId"] == stable_id("schedule", "beat", when.isoformat(timespec="microseconds"))
        assert datetime.fromisoformat(tick["timestamp"]) == when


async def restart(tmp_path: Path, out: Path, catch_up: bool) -> tuple[list[dict[str, Any]], datetime]:
    """Two ticks, a stop, a pause of five intervals, a start: the ticks and the restart time."""
    entry = "{type: schedule, name: beat, interval: 0.2, catch_up: %s}"
    async with engine_from(tmp_path, pattern(entry % "false", out)):
        await eventually(lambda: len(ticks(out)) >= 2)
    await asyncio.sleep(1.0)
    restarted = datetime.now(UTC)
    async with engine_from(tmp_path, pattern(entry % str(catch_up).lower(), out)):
        await eventually(lambda: any(scheduled(t) > restarted for t in ticks(out)), timeout=5)
    return ticks(out), restarted


async def test_restart_catches_up_missed_ticks(tmp_path: Path) -> None:
    """With catch_up, every tick due while it was down fires on start, numbers going on."""
    got, restarted = await restart(tmp_path, tmp_path / "out.jsonl", catch_up=True)
    numbers = [t["payload"]["n"] for t in got]
    assert numbers == list(range(len(numbers)))
    times = [scheduled(t) for t in got]
    last_before = max(i for i, t in enumerate(times) if t <= restarted - timedelta(seconds=0.9))
    # after the stop, the next tick is the stored last + 0.2 s, and each one 0.2 s later
    assert all(b - a == timedelta(seconds=0.2) for a, b in itertools.pairwise(times))
    missed = [t for t in times[last_before + 1 :] if t <= restarted]
    assert len(missed) >= 4


async def test_restart_without_catch_up_skips_missed_ticks(tmp_path: Path) -> None:
    """Without catch_up, the missed ticks are skipped: the next one is after the restart,
    in step with the old ones, and the numbers go on."""
    got, restarted = await restart(tmp_path, tmp_path / "out.jsonl", catch_up=False)
    numbers = [t["payload"]["n"] for t in got]
    assert numbers == list(range(len(numbers)))
    times = [scheduled(t) for t in got]
    later = [i for i, t in enumerate(times) if t > restarted]
    first_after = later[0]
    before = times[first_after - 1]
    assert before < restarted - timedelta(seconds=0.9)  # nothing fired for the gap
    gap = (times[first_after] - before) / timedelta(microseconds=1)
    assert gap % 200_000 == 0
    assert gap > 200_000


def load(tmp_path: Path, entry: str) -> tuple[Pattern | None, list[str]]:
    path = tmp_path / "schedule.yaml"
    path.write_text(pattern(entry, tmp_path / "out.jsonl"))
    loaded, errors = load_pattern(path)
    return loaded, [str(e) for e in errors]


def test_cron_ticks_are_wall_clock_times_of_their_zone(tmp_path: Path) -> None:
    """A cron schedule's next time and its tick: the scheduled time in its zone, the
    timestamp and id in UTC."""
    loaded, errors = load(
        tmp_path, '{type: schedule, name: nightly, cron: "0 2 * * *", timezone: Europe/Berlin}'
    )
    assert loaded is not None, errors
    inp = ScheduleInput(loaded.inputs[0].config, loaded.inputs[0], loaded)
    due = inp.after(datetime(2026, 12, 4, 12, tzinfo=UTC))
    tick = inp.tick(due, 7)
    assert tick.payload == {"schedule": "nightly", "scheduled": "2026-12-05T02:00:00+01:00", "n": 7}
    assert tick.timestamp == "2026-12-05T01:00:00Z"
    assert tick.message_id == stable_id("schedule", "nightly", "2026-12-05T01:00:00.000000+00:00")


def test_a_cron_pattern_passes_check(tmp_path: Path) -> None:
    """`wireway check` accepts a pattern with a cron schedule."""
    path = tmp_path / "nightly.yaml"
    entry = '{type: schedule, cron: "30 2 * * MON-FRI", timezone: America/New_York, catch_up: true}'
    path.write_text(pattern(entry, tmp_path / "out.jsonl"))
    result = wireway("check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok ")


@pytest.mark.parametrize(
    ("entry", "key", "words"),
    [
        ('{type: schedule, cron: "61 2 * * *"}', "cron", "minute: 61 is out of range"),
        ('{type: schedule, cron: "0 2 * *"}', "cron", "expected 5 fields"),
        ('{type: schedule, cron: "@reboot"}', "cron", "unknown shorthand"),
        ("{type: schedule}", "cron", "either `cron` or `interval`"),
        ('{type: schedule, cron: "@daily", interval: 5m}', "cron", "either"),
        ("{type: schedule, interval: 5 minutes}", "interval", "duration"),
        ("{type: schedule, interval: 0}", "interval", "above zero"),
        ('{type: schedule, cron: "@daily", timezone: Mars/Olympus}', "timezone", "unknown time zone"),
    ],
)
def test_bad_schedule_is_a_check_error_at_its_line(tmp_path: Path, entry: str, key: str, words: str) -> None:
    """A bad cron expression (or option) is an error at its key and line, exit 1, no traceback."""
    loaded, errors = load(tmp_path, entry)
    assert loaded is None
    assert any(key in e and "schedule.yaml:5" in e and words in e for e in errors), errors
    result = wireway("check", str(tmp_path / "schedule.yaml"))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert words in output
