"""Occupancy per device from radar presence and PIR motion, with a hold time.

A device is occupied from the first reading whose `ld2410.presence` or
`pir.motion_detected` is true; it becomes vacant `hold_seconds` after the last such
reading (the hold counts as occupied time). Readings without either sensor, or with
both false, do not extend the hold. Times come from the clock (when wireway saw the
reading), not from the device's `timestamp`, so a device with a wrong clock is still
tracked correctly. Occupied time is kept per UTC day, split at midnight.

Every change goes through the tracker's `on_change` listener, whether a reading or
`tick()` (the hold running out) caused it, so whoever keeps gauges or live clients up
to date sees each transition once: occupied <-> vacant, a device's first state, and a
device moving to another location (its event carries the new location). Each change
leaves the application as an `occupancy` message (`occupancy_message`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wireway.envelope import Message, stable_id

DAY = 86400.0
UNKNOWN = "unknown"
OCCUPANCY_TYPE = "occupancy"  # the messageType of occupancy changes
Listener = Callable[[dict[str, Any]], None]


def occupancy_message(event: dict[str, Any]) -> Message:
    """A change event as a message; its id names the device, the time and the new
    state, so a redelivery is the same change."""
    state = "occupied" if event["occupied"] else "vacant"
    return Message(
        message_id=stable_id("occupancy", event["device_id"], event["timestamp"], state, event["location"]),
        timestamp=event["timestamp"],
        payload=event,
        source="occupancy",
        message_type=OCCUPANCY_TYPE,
    )


def _rfc3339(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _day(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).date().isoformat()


def _mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # a plain dict skips the ABC check


def location_of(metadata: Any) -> str:
    """A device's location as text from its metadata ("unknown" without one)."""
    if not _mapping(metadata):
        return UNKNOWN
    location = metadata.get("location") or UNKNOWN
    return location if type(location) is str else str(location)


def detected(sensors: Any) -> bool:
    """True when the radar reports presence or the PIR reports motion."""
    if not _mapping(sensors):
        return False
    radar, pir = sensors.get("ld2410"), sensors.get("pir")
    return (_mapping(radar) and radar.get("presence") is True) or (
        _mapping(pir) and pir.get("motion_detected") is True
    )


def split_by_day(start: float, end: float) -> list[tuple[str, float]]:
    """[(UTC day, seconds)] of the interval start..end, split at each midnight."""
    out: list[tuple[str, float]] = []
    while start < end:
        midnight = (start // DAY + 1) * DAY
        stop = min(end, midnight)
        out.append((_day(start), stop - start))
        start = stop
    return out


@dataclass
class _Device:
    since: float
    occupied: bool = False
    last_detected: float = 0.0
    location: str = UNKNOWN
    days: dict[str, float] = field(default_factory=dict)  # finished occupied seconds
    reported: bool = False  # its first state was reported (not so after a restore)


class OccupancyTracker:
    """Occupied/vacant per device, occupied seconds per UTC day, counts per location.

    Args:
        hold_seconds: seconds without presence or motion before a device is vacant.
        clock: the time source (Unix seconds).
        retain_days: days of per-day totals kept in memory.
        on_change: called with every change event (the ones `update()` and `tick()`
            return), as it happens.
    """

    def __init__(
        self,
        hold_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        retain_days: int = 8,
        on_change: Listener | None = None,
    ) -> None:
        if hold_seconds <= 0:
            raise ValueError("hold_seconds must be positive")
        self.hold_seconds = hold_seconds
        self.clock = clock
        self.retain_days = retain_days
        self.on_change = on_change
        self._devices: dict[str, _Device] = {}
        # occupied devices per location as of the last change (what the gauges show)
        self._occupied: dict[str, int] = {}

    # ----- changes --------------------------------------------------------------------
    def update(self, reading: Mapping[str, Any]) -> dict[str, Any] | None:
        """Apply one reading; the change event, or None when nothing changed.

        A device seen for the first time reports its state (occupied or vacant). When
        a device whose hold ran out without a `tick()` is detected again, the vacancy
        is accounted for (and passed to `on_change`) and the returned event is the new
        occupancy. An occupied device whose metadata names another location reports
        its occupancy there.
        """
        device_id = reading.get("device_id")
        if not isinstance(device_id, str):
            return None
        now = self.clock()
        device = self._devices.get(device_id)
        if device is None:
            device = self._devices[device_id] = _Device(since=now)
        new = not device.reported
        moved = False
        metadata: Any = reading.get("device_metadata")
        if _mapping(metadata):
            location = metadata.get("location") or UNKNOWN
            if type(location) is not str:
                location = str(location)
            if location != device.location:
                if device.occupied:
                    self._count(device.location, -1)
                    self._count(location, 1)
                    moved = True
                device.location = location
        event = None
        if device.occupied and now - device.last_detected >= self.hold_seconds:
            event = self._expire(device_id, device, now)  # the hold ran out without a tick()
            moved = False
        if detected(reading.get("sensors")):
            device.last_detected = now
            if not device.occupied:
                if event is not None:
                    self._emit(event)  # the vacancy, before the new occupancy
                device.occupied, device.since = True, now
                self._count(device.location, 1)
                event = self._event(device_id, device, now)
            elif moved:
                event = self._event(device_id, device, now)
        elif new or moved:
            event = self._event(device_id, device, now)
        device.reported = True
        if event is not None:
            self._emit(event)
        return event

    def move(self, device_id: str, location: str) -> None:
        """The device's metadata names another location: it counts there from now on
        (a device not seen yet takes it at its first reading)."""
        device = self._devices.get(device_id)
        if device is None or device.location == location:
            return
        if device.occupied:
            self._count(device.location, -1)
            self._count(location, 1)
        device.location = location
        self._emit(self._event(device_id, device, self.clock()))

    def tick(self) -> list[dict[str, Any]]:
        """Vacate devices whose hold ran out; their change events."""
        now = self.clock()
        events = []
        for device_id, device in self._devices.items():
            event = self._expire(device_id, device, now)
            if event is not None:
                events.append(event)
                self._emit(event)
        return events

    def _emit(self, event: dict[str, Any]) -> None:
        if self.on_change is not None:
            self.on_change(event)

    def _count(self, location: str, delta: int) -> None:
        self._occupied[location] = self._occupied.get(location, 0) + delta

    def occupied_in(self, location: str) -> int:
        """Occupied devices in a location as of the last change (what the events said)."""
        return self._occupied.get(location, 0)

    def _expire(self, device_id: str, device: _Device, now: float) -> dict[str, Any] | None:
        if not device.occupied or now - device.last_detected < self.hold_seconds:
            return None
        vacant_at = device.last_detected + self.hold_seconds
        for day, seconds in split_by_day(device.since, vacant_at):
            device.days[day] = device.days.get(day, 0.0) + seconds
        device.occupied, device.since = False, vacant_at
        self._count(device.location, -1)
        oldest = _day(now - self.retain_days * DAY)
        for day in [d for d in device.days if d < oldest]:
            del device.days[day]
        return self._event(device_id, device, now)

    @staticmethod
    def _event(device_id: str, device: _Device, now: float) -> dict[str, Any]:
        return {
            "device_id": device_id,
            "location": device.location,
            "occupied": device.occupied,
            "since": _rfc3339(device.since),
            "timestamp": _rfc3339(now),
        }

    def restore(
        self, rows: Iterable[tuple[str, str, float]], locations: Mapping[str, str] | None = None
    ) -> None:
        """Take stored per-day totals (device_id, day, seconds) back, say after a restart.

        `locations` (device_id -> location) places the restored devices until their
        next reading says where they are. A restored device still reports its first state.
        """
        now = self.clock()
        for device_id, day, seconds in rows:
            device = self._devices.get(device_id)
            if device is None:
                device = self._devices[device_id] = _Device(since=now)
                if locations is not None and device_id in locations:
                    device.location = locations[device_id]
            device.days[str(day)] = max(device.days.get(str(day), 0.0), float(seconds))

    # ----- views (as of now: a hold that ran out counts as vacant before tick()) -------
    def _occupied_until(self, device: _Device, now: float) -> float | None:
        """The end of the current occupied stretch as of now, or None when vacant."""
        if not device.occupied:
            return None
        return min(now, device.last_detected + self.hold_seconds)

    def _totals(self, device: _Device, now: float) -> dict[str, float]:
        totals = dict(device.days)
        until = self._occupied_until(device, now)
        if until is not None:
            for day, seconds in split_by_day(device.since, until):
                totals[day] = totals.get(day, 0.0) + seconds
        return totals

    def _is_occupied(self, device: _Device, now: float) -> bool:
        return device.occupied and now - device.last_detected < self.hold_seconds

    def snapshot(self, device_id: str) -> dict[str, Any]:
        """`occupied`, `since`, `occupied_seconds_today` (UTC day) and `location`."""
        now = self.clock()
        device = self._devices.get(device_id)
        if device is None:
            return {
                "occupied": False,
                "since": None,
                "occupied_seconds_today": 0.0,
                "location": "unknown",
            }
        occupied = self._is_occupied(device, now)
        since = device.since
        if device.occupied and not occupied:
            since = device.last_detected + self.hold_seconds
        return {
            "occupied": occupied,
            "since": _rfc3339(since),
            "occupied_seconds_today": round(self._totals(device, now).get(_day(now), 0.0), 3),
            "location": device.location,
        }

    def counts_by_location(self) -> dict[str, int]:
        """Occupied devices per location (every known location, 0 included)."""
        now = self.clock()
        counts: dict[str, int] = {}
        for device in self._devices.values():
            counts[device.location] = counts.get(device.location, 0) + int(self._is_occupied(device, now))
        return counts

    def locations(self, others: Mapping[str, str] | None = None) -> dict[str, tuple[int, int]]:
        """location -> (occupied devices, devices) as of now, every known location.

        `others` (device_id -> location) adds devices the tracker has not seen yet
        (say registered ones that have not reported since the start), as vacant.
        """
        now = self.clock()
        out: dict[str, tuple[int, int]] = {}
        for device in self._devices.values():
            occupied, devices = out.get(device.location, (0, 0))
            out[device.location] = (occupied + int(self._is_occupied(device, now)), devices + 1)
        for device_id, location in (others or {}).items():
            if device_id not in self._devices:
                occupied, devices = out.get(location, (0, 0))
                out[location] = (occupied, devices + 1)
        return out

    def days(self, device_id: str) -> dict[str, float]:
        """UTC day -> occupied seconds of one device as of now (the days kept in memory)."""
        device = self._devices.get(device_id)
        if device is None:
            return {}
        return {day: round(s, 3) for day, s in self._totals(device, self.clock()).items()}

    def daily(self) -> list[tuple[str, str, float]]:
        """(device_id, UTC day, occupied seconds) totals so far, for an upsert."""
        now = self.clock()
        rows = []
        for device_id, device in self._devices.items():
            for day, seconds in sorted(self._totals(device, now).items()):
                rows.append((device_id, day, round(seconds, 3)))
        return rows
