"""Occupancy from radar presence and PIR motion, with a hold time and a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from wireway.apps.sensor_ingest.occupancy import OccupancyTracker, split_by_day

NOON = datetime(2025, 10, 14, 12, 0, tzinfo=UTC).timestamp()
BEFORE_MIDNIGHT = datetime(2025, 10, 14, 23, 59, 50, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def reading(
    device: str = "esp32-001",
    *,
    presence: bool | None = None,
    motion: bool | None = None,
    location: str | None = "lab",
) -> dict[str, Any]:
    sensors: dict[str, Any] = {"mq134": {"gas_concentration": 10, "unit": "ppm"}}
    if presence is not None:
        sensors["ld2410"] = {"presence": presence, "distance": 100, "energy": 50}
    if motion is not None:
        sensors["pir"] = {"motion_detected": motion}
    metadata = {"location": location} if location is not None else {}
    return {
        "device_id": device,
        "timestamp": "2025-10-14T12:00:00Z",
        "sensors": sensors,
        "device_metadata": metadata,
    }


def test_presence_then_vacant_after_the_hold_time() -> None:
    """Occupied on presence or motion; vacant hold_seconds after the last one."""
    clock = Clock()
    tracker = OccupancyTracker(hold_seconds=30, clock=clock)
    first = tracker.update(reading(presence=False))
    assert first == {
        "device_id": "esp32-001",
        "location": "lab",
        "occupied": False,
        "since": "2025-10-14T12:00:00.000Z",
        "timestamp": "2025-10-14T12:00:00.000Z",
    }
    clock.advance(5)
    occupied = tracker.update(reading(presence=True))
    assert occupied is not None
    assert occupied["occupied"] is True
    assert occupied["since"] == "2025-10-14T12:00:05.000Z"
    clock.advance(20)
    assert tracker.update(reading(motion=True)) is None  # PIR alone extends the hold
    clock.advance(29)
    assert tracker.update(reading(presence=False, motion=False)) is None  # still held
    assert tracker.snapshot("esp32-001")["occupied"] is True
    clock.advance(1)  # 30 s after the last motion
    vacant = tracker.update(reading(presence=False))
    assert vacant is not None
    assert vacant["occupied"] is False
    assert vacant["since"] == "2025-10-14T12:00:55.000Z"
    assert vacant["timestamp"] == "2025-10-14T12:00:55.000Z"
    snap = tracker.snapshot("esp32-001")
    assert snap == {
        "occupied": False,
        "since": "2025-10-14T12:00:55.000Z",
        "occupied_seconds_today": 50.0,  # 12:00:05 to 12:00:55, the hold included
        "location": "lab",
    }


def test_tick_vacates_devices_that_stopped_reporting() -> None:
    """tick() reports the change at the end of the hold, even if it runs later."""
    clock = Clock()
    tracker = OccupancyTracker(hold_seconds=30, clock=clock)
    tracker.update(reading("a", presence=True))
    tracker.update(reading("b", motion=True))
    clock.advance(10)
    tracker.update(reading("b", motion=True))
    clock.advance(25)  # a: 35 s since its presence, b: 25 s
    (vacant,) = tracker.tick()
    assert vacant["device_id"] == "a"
    assert vacant["occupied"] is False
    assert vacant["since"] == "2025-10-14T12:00:30.000Z"
    assert vacant["timestamp"] == "2025-10-14T12:00:35.000Z"
    assert tracker.tick() == []
    clock.advance(100)
    (vacant_b,) = tracker.tick()
    assert vacant_b["device_id"] == "b"
    assert vacant_b["since"] == "2025-10-14T12:00:40.000Z"
    assert tracker.snapshot("b")["occupied_seconds_today"] == 40.0
    # back again after a long absence
    again = tracker.update(reading("a", presence=True))
    assert again is not None
    assert again["occupied"] is True


def test_a_hold_that_ran_out_without_tick_is_accounted_on_the_next_reading() -> None:
    """Views treat an expired hold as vacant; the next detection opens a new stretch."""
    clock = Clock()
    tracker = OccupancyTracker(hold_seconds=30, clock=clock)
    tracker.update(reading(presence=True))
    clock.advance(100)
    assert tracker.snapshot("esp32-001")["occupied"] is False
    assert tracker.snapshot("esp32-001")["since"] == "2025-10-14T12:00:30.000Z"
    assert tracker.counts_by_location() == {"lab": 0}
    event = tracker.update(reading(presence=True))
    assert event is not None
    assert event["occupied"] is True
    assert event["since"] == "2025-10-14T12:01:40.000Z"
    clock.advance(10)
    assert tracker.snapshot("esp32-001")["occupied_seconds_today"] == 40.0  # 30 + 10


def test_occupied_time_is_split_at_midnight() -> None:
    """A stretch across midnight counts on both UTC days."""
    clock = Clock(BEFORE_MIDNIGHT)
    tracker = OccupancyTracker(hold_seconds=30, clock=clock)
    tracker.update(reading(presence=True))  # 23:59:50
    clock.advance(20)  # 00:00:10
    tracker.update(reading(presence=True))
    assert tracker.snapshot("esp32-001")["occupied_seconds_today"] == 10.0  # ongoing
    clock.advance(60)
    (vacant,) = tracker.tick()  # vacant at 00:00:40
    assert vacant["since"] == "2025-10-15T00:00:40.000Z"
    assert tracker.daily() == [
        ("esp32-001", "2025-10-14", 10.0),
        ("esp32-001", "2025-10-15", 40.0),
    ]
    assert tracker.snapshot("esp32-001")["occupied_seconds_today"] == 40.0
    assert split_by_day(BEFORE_MIDNIGHT, BEFORE_MIDNIGHT + 86400 + 20) == [
        ("2025-10-14", 10.0),
        ("2025-10-15", 86400.0),
        ("2025-10-16", 10.0),
    ]


def test_counts_by_location_daily_and_restore() -> None:
    """Occupied devices per location (zeros included); per-day totals for persisting."""
    clock = Clock()
    tracker = OccupancyTracker(hold_seconds=30, clock=clock)
    tracker.update(reading("a", presence=True, location="lab"))
    tracker.update(reading("b", motion=True, location="lab"))
    tracker.update(reading("c", presence=True, location="hall"))
    tracker.update(reading("d", presence=False, location="hall"))
    tracker.update(reading("e", presence=False, location=None))
    assert tracker.counts_by_location() == {"lab": 2, "hall": 1, "unknown": 0}
    assert tracker.snapshot("e")["location"] == "unknown"
    clock.advance(20)
    tracker.update(reading("b", motion=True, location="lab"))
    clock.advance(15)
    events = tracker.tick()
    assert sorted(e["device_id"] for e in events) == ["a", "c"]
    assert tracker.counts_by_location() == {"lab": 1, "hall": 0, "unknown": 0}
    # a device that moves takes its occupancy with it
    tracker.update(reading("b", motion=True, location="hall"))
    assert tracker.counts_by_location() == {"lab": 0, "hall": 1, "unknown": 0}
    rows = {(d, day): s for d, day, s in tracker.daily()}
    assert rows[("a", "2025-10-14")] == 30.0
    assert rows[("b", "2025-10-14")] == 35.0  # still occupied: counted up to now
    tracker.restore([("a", "2025-10-14", 500.0), ("z", "2025-10-13", 12.5)])
    rows = {(d, day): s for d, day, s in tracker.daily()}
    assert rows[("a", "2025-10-14")] == 500.0
    assert rows[("z", "2025-10-13")] == 12.5
    assert tracker.snapshot("nobody") == {
        "occupied": False,
        "since": None,
        "occupied_seconds_today": 0.0,
        "location": "unknown",
    }
    with pytest.raises(ValueError, match="hold_seconds"):
        OccupancyTracker(hold_seconds=0)


def _old_detected(sensors: Any) -> bool:
    """detected() as it was written first (the reference)."""
    from collections.abc import Mapping

    if not isinstance(sensors, Mapping):
        return False
    radar, pir = sensors.get("ld2410"), sensors.get("pir")
    return (isinstance(radar, Mapping) and radar.get("presence") is True) or (
        isinstance(pir, Mapping) and pir.get("motion_detected") is True
    )


def test_detected_reads_any_mapping_and_only_true() -> None:
    """The plain-dict fast path answers as the Mapping test does."""
    from types import MappingProxyType

    from wireway.apps.sensor_ingest.occupancy import detected

    values: list[Any] = [True, False, 1, "true", None, {}]
    shapes: list[Any] = [None, [], "x", 3, {}, MappingProxyType({"pir": {"motion_detected": True}})]
    for v in values:
        for wrap in (dict, MappingProxyType):
            shapes += [
                {"ld2410": wrap({"presence": v})},
                {"pir": wrap({"motion_detected": v})},
                wrap({"ld2410": {"presence": False}, "pir": {"motion_detected": v}}),
                {"ld2410": [v], "pir": v},
            ]
    for sensors in shapes:
        assert detected(sensors) is _old_detected(sensors), sensors


def test_location_of_any_type_is_text_and_an_expired_hold_is_reported_once() -> None:
    clock = Clock()
    tracker = OccupancyTracker(hold_seconds=30, clock=clock)
    tracker.update({"device_id": "a", "sensors": {}, "device_metadata": {"location": 7}})
    assert tracker.snapshot("a")["location"] == "7"
    tracker.update({"device_id": "a", "sensors": {}, "device_metadata": {"location": ""}})
    assert tracker.snapshot("a")["location"] == "unknown"
    tracker.update({"device_id": "a", "sensors": {"pir": {"motion_detected": True}}, "device_metadata": None})
    assert tracker.snapshot("a")["location"] == "unknown"
    clock.advance(30)  # exactly the hold: vacant on the next reading
    vacant = tracker.update({"device_id": "a", "sensors": {}})
    assert vacant is not None
    assert vacant["occupied"] is False
    assert tracker.update({"device_id": "a", "sensors": {}}) is None
    assert tracker.update({"device_id": 5, "sensors": {}}) is None
