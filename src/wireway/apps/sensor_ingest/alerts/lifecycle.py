"""The alert lifecycle: one open (or acknowledged) alert per rule and device.

A repeat raises its `count` and `last_seen` and is told again only when
`cooldown_seconds` have passed since it was last told (and only while the alert is
not acknowledged). An alert is cleared when its clear condition (default: the
condition is false) has held on every reading of the device for
`clear_after_seconds` - a reading on which the clear condition is false starts the
wait again, one on which it cannot be evaluated does not count either way - or by
`clear()`. After that, a new occurrence opens a new alert.

Every change is an event: a copy of the alert plus `event` (`raised`, `repeated`,
`acknowledged` or `cleared`) and `notify` (whether people are told: raised,
repeated after the cooldown, cleared). `alert_message` makes an event a message
whose id names the alert and its transition, so a redelivery is the same event.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from wireway.apps.sensor_ingest.alerts.restore import epoch, restore_alert
from wireway.apps.sensor_ingest.alerts.rules import (
    CLOCK_NAMES,
    SAFE_FRACTION,
    AlertRule,
    BusinessHours,
    CompiledRule,
    TemplateFields,
    names_read,
    normalize_sensors,
    rfc3339,
)
from wireway.envelope import Message, new_message_id, now_rfc3339
from wireway.expr import Expr

ALERT_TYPE = "alert"  # the messageType of alert events


def transition(event: Mapping[str, Any]) -> str:
    """The part of an alert message's id that names its transition."""
    kind = event["event"]
    if kind == "raised":
        return "opened"
    if kind == "repeated":
        return f"count-{event['count']}"
    return str(kind)


def alert_message(event: dict[str, Any], correlation_id: str | None = None) -> Message:
    """An alert event as a message: `alert-<id>-opened`, `alert-<id>-count-<n>`,
    `alert-<id>-acknowledged`, `alert-<id>-cleared`."""
    msg = Message(
        message_id=f"alert-{event['id']}-{transition(event)}",
        timestamp=now_rfc3339(),
        payload=event,
        source="alerts",
        message_type=ALERT_TYPE,
    )
    msg.metadata.correlation_id = correlation_id
    return msg


class AlertEngine:
    """Evaluates rules on readings and keeps the alerts' lifecycle.

    Args:
        rules: the rules, each name once.
        clock: the time source (Unix seconds).
        business_hours: for rules that do not carry their own.
        history: cleared alerts kept in memory for `list()`.

    Every change is returned as an event (see the module docstring); evaluating the
    same reading again (same `device_id` and `timestamp`) does not count it twice.
    """

    def __init__(
        self,
        rules: Iterable[AlertRule],
        *,
        clock: Callable[[], float] = time.time,
        business_hours: BusinessHours | None = None,
        history: int = 1000,
    ) -> None:
        self.rules: list[CompiledRule] = []
        for rule in rules:
            if any(r.rule.name == rule.name for r in self.rules):
                raise ValueError(f"two alert rules are named {rule.name!r}")
            clear = rule.clear_condition or f"!({rule.condition})"
            self.rules.append(CompiledRule(rule, Expr(rule.condition), Expr(clear)))
        self.clock = clock
        self.business_hours = business_hours or BusinessHours()
        # the context variables some rule reads: evaluate() builds only those
        needs = names_read([e for r in self.rules for e in (r.condition, r.clear)])
        self._need_reading = "reading" in needs
        self._need_sensors = "sensors" in needs or self._need_reading
        self._need_device = "device" in needs
        self._need_clock = bool(needs & CLOCK_NAMES)
        self._clock_memo: dict[int, tuple[BusinessHours, int, tuple[int, int, bool]]] = {}
        self._active: dict[tuple[str, str], dict[str, Any]] = {}
        self._cleared: deque[dict[str, Any]] = deque(maxlen=history)
        self._clear_since: dict[str, float] = {}
        self._notified: dict[str, float] = {}

    # ----- evaluation -----------------------------------------------------------------
    def context(
        self,
        reading: Mapping[str, Any],
        hours: BusinessHours | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The CEL context of a reading (see the module docstring)."""
        sensors = normalize_sensors(reading.get("sensors"))
        device = reading.get("device_metadata")
        hours = hours or self.business_hours
        now = self.clock() if now is None else now
        local = hours.local(now)
        return {
            "reading": {**reading, "sensors": sensors},
            "sensors": sensors,
            "device": device if isinstance(device, dict) else {},
            "now_local_hour": local.hour,
            "now_local_weekday": local.weekday(),
            "in_business_hours": hours.contains(now),
        }

    def _local(self, hours: BusinessHours, now: float) -> tuple[int, int, bool]:
        """(local hour, weekday, in business hours) at `now`: once per second and hours.

        All three depend on the whole second only (time zone offsets are whole
        seconds), unless `now` is so near the next second that it rounds up to it.
        """
        second = math.floor(now)
        if now - second >= SAFE_FRACTION:  # may round up to the next second: no memo
            local = hours.local(now)
            return local.hour, local.weekday(), hours.contains(now)
        memo = self._clock_memo.get(id(hours))
        if memo is not None and memo[0] is hours and memo[1] == second:
            return memo[2]
        local = hours.local(now)
        fields = (local.hour, local.weekday(), hours.contains(now))
        self._clock_memo[id(hours)] = (hours, second, fields)
        return fields

    def _context(self, reading: Mapping[str, Any], hours: BusinessHours, now: float) -> dict[str, Any]:
        """`context()` with only the variables the rules read (the others are never looked at)."""
        context: dict[str, Any] = {}
        if self._need_sensors:
            sensors = normalize_sensors(reading.get("sensors"))
            if self._need_reading:
                context["reading"] = {**reading, "sensors": sensors}
            context["sensors"] = sensors
        if self._need_device:
            device = reading.get("device_metadata")
            context["device"] = device if isinstance(device, dict) else {}
        if self._need_clock:
            hour, weekday, inside = self._local(hours, now)
            context["now_local_hour"] = hour
            context["now_local_weekday"] = weekday
            context["in_business_hours"] = inside
        return context

    def evaluate(self, reading: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Apply every rule to one reading; the events it caused."""
        return self.evaluate_many([reading])

    def evaluate_many(self, readings: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """`evaluate` for a batch, in order. A `repeated` event that is not told is
        left out when a later event of the same alert follows in the batch (an alert
        repeated by every reading of a batch is one event, in its last state)."""
        return [event for _, event in self.evaluate_each(readings)]

    def evaluate_each(self, readings: Iterable[Mapping[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
        """`evaluate_many`, each event with the place in `readings` of the reading that
        caused it."""
        now = self.clock()
        changes: list[tuple[dict[str, Any], str, bool]] = []  # alert, event, notify
        causes: list[int] = []  # per change, the reading's place
        for place, reading in enumerate(readings):
            before = len(changes)
            self._changes(reading, now, changes)
            if len(changes) > before:
                causes += [place] * (len(changes) - before)
        if not changes:
            return []
        last = {alert["id"]: i for i, (alert, _, _) in enumerate(changes)}
        return [
            (causes[i], {**alert, "event": event, "notify": notify})
            for i, (alert, event, notify) in enumerate(changes)
            if notify or event != "repeated" or last[alert["id"]] == i
        ]

    def _changes(
        self, reading: Mapping[str, Any], now: float, changes: list[tuple[dict[str, Any], str, bool]]
    ) -> None:
        """Apply every rule to one reading, appending (a snapshot of the alert, its event,
        whether to notify) for each change."""
        device_id = reading.get("device_id")
        if not isinstance(device_id, str) or not self.rules:
            return
        contexts: dict[int, dict[str, Any]] = {}
        stamp = reading.get("timestamp")
        for compiled in self.rules:
            rule = compiled.rule
            hours = rule.business_hours or self.business_hours
            context = contexts.get(id(hours))
            if context is None:
                context = contexts[id(hours)] = self._context(reading, hours, now)
            key = (rule.name, device_id)
            alert = self._active.get(key)
            if compiled.test(context) is True:
                if alert is None:
                    alert = self._open(rule, device_id, reading, now)
                    changes.append((dict(alert), "raised", True))
                    continue
                self._clear_since.pop(alert["id"], None)
                if stamp is not None and alert["data"].get("timestamp") == stamp:
                    continue  # this very reading was already counted (a retried batch)
                alert["count"] += 1
                alert["last_seen"] = rfc3339(now)
                alert["data"] = _data(reading)
                due = now - self._notified.get(alert["id"], 0.0) >= rule.cooldown_seconds
                again = due and alert["state"] == "open"
                if again:
                    self._notified[alert["id"]] = now
                changes.append((dict(alert), "repeated", again))
                continue
            if alert is None:
                continue
            held = compiled.test_clear(context)
            if held is False:
                self._clear_since.pop(alert["id"], None)
            elif held is True:
                since = self._clear_since.setdefault(alert["id"], now)
                if now - since >= rule.clear_after_seconds:
                    self._close(alert, now)
                    changes.append((dict(alert), "cleared", True))

    def _open(
        self, rule: AlertRule, device_id: str, reading: Mapping[str, Any], now: float
    ) -> dict[str, Any]:
        metadata = reading.get("device_metadata")
        location = metadata.get("location") if isinstance(metadata, dict) else None
        fields = TemplateFields(
            device_id=device_id, rule=rule.name, severity=rule.severity,
            location=location or "unknown",
        )  # fmt: skip
        template = rule.message or "{rule} on {device_id}"
        try:
            message = template.format_map(fields)
        except (ValueError, IndexError, AttributeError, KeyError):
            message = template
        alert: dict[str, Any] = {
            "id": new_message_id(),
            "rule": rule.name,
            "device_id": device_id,
            "severity": rule.severity,
            "state": "open",
            "message": message,
            "count": 1,
            "first_seen": rfc3339(now),
            "last_seen": rfc3339(now),
            "acknowledged_at": None,
            "cleared_at": None,
            "data": _data(reading),
        }
        self._active[(rule.name, device_id)] = alert
        self._notified[alert["id"]] = now
        return alert

    def _close(self, alert: dict[str, Any], now: float) -> None:
        alert["state"] = "cleared"
        alert["cleared_at"] = rfc3339(now)
        self._active.pop((alert["rule"], alert["device_id"]), None)
        self._clear_since.pop(alert["id"], None)
        self._notified.pop(alert["id"], None)
        self._cleared.append(alert)

    # ----- API --------------------------------------------------------------------------
    def _find(self, alert_id: str) -> dict[str, Any] | None:
        for alert in self._active.values():
            if alert["id"] == alert_id:
                return alert
        return next((a for a in self._cleared if a["id"] == alert_id), None)

    def acknowledge(self, alert_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """open -> acknowledged: (the alert, its events); the alert unchanged and no
        event when it is not open; (None, []) for an unknown id."""
        alert = self._find(alert_id)
        if alert is None:
            return None, []
        if alert["state"] != "open":
            return dict(alert), []
        alert["state"] = "acknowledged"
        alert["acknowledged_at"] = rfc3339(self.clock())
        return dict(alert), [{**alert, "event": "acknowledged", "notify": False}]

    def clear(self, alert_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """open/acknowledged -> cleared (told): (the alert, its events), as `acknowledge`."""
        alert = self._find(alert_id)
        if alert is None:
            return None, []
        if alert["state"] == "cleared":
            return dict(alert), []
        self._close(alert, self.clock())
        return dict(alert), [{**alert, "event": "cleared", "notify": True}]

    def list(self, state: str | None = None, device_id: str | None = None) -> list[dict[str, Any]]:
        """Alerts (open, acknowledged and recently cleared), newest `last_seen` first."""
        found = [*self._active.values(), *self._cleared]
        if state:
            found = [a for a in found if a["state"] == state]
        if device_id:
            found = [a for a in found if a["device_id"] == device_id]
        found.sort(key=lambda a: a["last_seen"], reverse=True)
        return [dict(a) for a in found]

    def load(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        """Restore stored open/acknowledged alerts (rows from the database) at start."""
        for row in alerts:
            alert = restore_alert(row)
            if alert is None or alert["state"] == "cleared":
                continue
            key = (alert["rule"], alert["device_id"])
            current = self._active.get(key)
            if current is not None and current["last_seen"] >= alert["last_seen"]:
                continue
            self._active[key] = alert
            self._notified[alert["id"]] = epoch(alert["last_seen"])


def _data(reading: Mapping[str, Any]) -> dict[str, Any]:
    """What an alert keeps of the reading that raised (or repeated) it."""
    return {"timestamp": reading.get("timestamp"), "sensors": reading.get("sensors")}
