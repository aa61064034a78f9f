"""Alert rules over readings and the alert lifecycle, plus signed webhooks.

A rule is a CEL condition over one enriched reading. Its context:

- `reading`: the reading (`device_id`, `timestamp`, `received_at`, `sensors`,
  `device_metadata`), `sensors` (a shortcut) and `device` (the device metadata);
- `now_local_hour`, `now_local_weekday` (0 = Monday) and `in_business_hours`, from
  the clock in the time zone of the rule's (or the engine's) `BusinessHours`;
- an `mq134` sensor also carries `gas_concentration_ppm` (ppb divided by 1000), so
  thresholds compare in ppm whatever unit the device sent.

A condition that cannot be evaluated (a missing field) is false. Lifecycle: one open
(or acknowledged) alert per rule and device. A repeat raises its `count` and
`last_seen` and notifies again only when `cooldown_seconds` have passed since the
last notification (and only while the alert is not acknowledged). An alert is
cleared when its clear condition (default: the condition is false) has held on
every reading of the device for `clear_after_seconds` - a reading on which the
clear condition is false starts the wait again, one on which it cannot be
evaluated does not count either way - or by `clear()`. After that, a new occurrence
opens a new alert. Every change is written with `persist(alert)`; raising,
re-notifying and clearing also call `notify(alert)` with one more key, `event`
(`raised`, `repeated` or `cleared`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

from wireway.envelope import new_message_id
from wireway.expr import Expr
from wireway.observability import logging as log
from wireway.runtime.backoff import backoff

logger = log.get("alerts")

Severity = Literal["info", "warning", "critical"]
Hook = Callable[[dict[str, Any]], Awaitable[None]]

if TYPE_CHECKING:  # httpx (~10 MB) only when a webhook URL is set
    import httpx


class BusinessHours(msgspec.Struct, forbid_unknown_fields=True):
    """When people are expected on site: weekdays and local hours in a time zone.

    `start_hour` <= local hour < `end_hour` on one of `days` (0 = Monday); with
    `end_hour` <= `start_hour` the window runs past midnight.
    """

    days: list[Annotated[int, Meta(ge=0, le=6)]] = msgspec.field(default_factory=lambda: [0, 1, 2, 3, 4])
    start_hour: Annotated[float, Meta(ge=0, le=24)] = 8
    end_hour: Annotated[float, Meta(ge=0, le=24)] = 18
    timezone: Annotated[str, Meta(description="IANA name, like Europe/Berlin")] = "UTC"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r} - at `$.timezone`") from None

    def local(self, when: float) -> datetime:
        """`when` (a Unix time) in this time zone."""
        return datetime.fromtimestamp(when, ZoneInfo(self.timezone))

    def contains(self, when: float) -> bool:
        """True when `when` falls inside business hours."""
        local = self.local(when)
        if local.weekday() not in self.days:
            return False
        hour = local.hour + local.minute / 60 + local.second / 3600
        if self.start_hour < self.end_hour:
            return self.start_hour <= hour < self.end_hour
        return hour >= self.start_hour or hour < self.end_hour


class AlertRule(msgspec.Struct, forbid_unknown_fields=True):
    """One alert rule: when to raise, how loud, and when it is over.

    `message` may name `{device_id}`, `{rule}`, `{severity}` and `{location}`.
    """

    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
    condition: Annotated[str, Meta(description="CEL over reading, sensors, device")]
    severity: Severity = "warning"
    cooldown_seconds: Annotated[float, Meta(ge=0)] = 60
    clear_condition: Annotated[str | None, Meta(description="CEL; default: the condition is false")] = None
    clear_after_seconds: Annotated[float, Meta(ge=0)] = 60
    message: str = ""
    business_hours: BusinessHours | None = None

    def __post_init__(self) -> None:
        Expr(self.condition)  # a syntax error is reported when the pattern loads
        if self.clear_condition is not None:
            Expr(self.clear_condition)


GAS_CONDITION = (
    "has(sensors.mq134) && has(sensors.mq134.gas_concentration_ppm)"
    " && sensors.mq134.gas_concentration_ppm > {threshold}"
)
PRESENCE_CONDITION = (
    "has(device.secure_area) && device.secure_area == true"
    " && ((has(sensors.ld2410) && has(sensors.ld2410.presence)"
    " && sensors.ld2410.presence == true)"
    " || (has(sensors.pir) && has(sensors.pir.motion_detected)"
    " && sensors.pir.motion_detected == true))"
    " && !in_business_hours"
)


def default_rules(
    gas_threshold_ppm: float = 500, business_hours: BusinessHours | None = None
) -> list[AlertRule]:
    """`high_gas_concentration` and `unauthorized_presence`."""
    hours = business_hours or BusinessHours()
    threshold = float(gas_threshold_ppm)
    return [
        AlertRule(
            name="high_gas_concentration",
            condition=GAS_CONDITION.format(threshold=repr(threshold)),
            severity="critical",
            message=f"Gas concentration above {threshold:g} ppm on {{device_id}}",
            business_hours=hours,
        ),
        AlertRule(
            name="unauthorized_presence",
            condition=PRESENCE_CONDITION,
            severity="warning",
            message="Presence in secure area outside business hours on {device_id} ({location})",
            business_hours=hours,
        ),
    ]


# ----- shortcuts: the default conditions in plain Python, for the cases they settle ------
# A shortcut answers True or False exactly where the expression (its fast path) would,
# and None wherever it is not sure (an unusual shape, an error): then the expression runs.
Decide = Callable[[dict[str, Any]], bool | None]


def _gas_over(threshold: float) -> Decide:
    def decide(context: dict[str, Any]) -> bool | None:
        sensors = context.get("sensors")
        if type(sensors) is not dict:
            return None
        if "mq134" not in sensors:
            return False
        gas = sensors["mq134"]
        if type(gas) is not dict:
            return None
        if "gas_concentration_ppm" not in gas:
            return False
        ppm = gas["gas_concentration_ppm"]
        if type(ppm) is float or type(ppm) is int:
            return bool(ppm > threshold)
        return None

    return decide


def _outside_secure_area(context: dict[str, Any]) -> bool | None:
    """False for a device that is not `secure_area: true` (most); else ask the expression."""
    device = context.get("device")
    if type(device) is not dict:
        return None
    if device.get("secure_area") is not True:  # missing, or anything but true: `== true` fails
        return False
    return None


_GAS_PATTERN = re.compile(re.escape(GAS_CONDITION).replace(re.escape("{threshold}"), r"(\d+\.\d+)"))


def shortcut(condition: str) -> Decide | None:
    """The shortcut for a condition text, when it is one of the default rules'."""
    if condition == PRESENCE_CONDITION:
        return _outside_secure_area
    m = _GAS_PATTERN.fullmatch(condition)
    if m is not None:
        return _gas_over(float(m.group(1)))  # the literal as the expression reads it
    return None


Test = Callable[[dict[str, Any]], bool | None]  # `_truth` of a rule's expression on a context


def _tester(expr: Expr, decide: Decide | None, negate: bool = False) -> Test:
    """`_truth(expr, context)`, asking `decide` first (negated for a `!(condition)`)."""
    if decide is None or expr.fast is None:
        return lambda context: _truth(expr, context)

    def test(context: dict[str, Any]) -> bool | None:
        settled = decide(context)
        if settled is None:
            return _truth(expr, context)
        return not settled if negate else settled

    return test


def normalize_sensors(sensors: Any) -> dict[str, Any]:
    """A copy of `sensors` whose mq134 also carries `gas_concentration_ppm`."""
    if not isinstance(sensors, dict):
        return {}
    gas = sensors.get("mq134")
    if not isinstance(gas, dict):
        return sensors
    value: Any = gas.get("gas_concentration")
    kind = type(value)
    usual = kind is int or kind is float  # JSON numbers skip the general test
    if not usual and (isinstance(value, bool) or not isinstance(value, int | float)):
        return sensors
    unit = str(gas.get("unit") or "ppm").lower()
    ppm = value / 1000 if unit == "ppb" else value
    gas = dict(gas)  # copies as `{**gas}` would, cheaper
    gas["gas_concentration_ppm"] = float(ppm)
    normalized = dict(sensors)
    normalized["mq134"] = gas
    return normalized


def rfc3339(when: float) -> str:
    """A Unix time as RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _truth(expr: Expr, context: dict[str, Any]) -> bool | None:
    """True / False, or None when the expression cannot be evaluated or is not a bool."""
    try:
        value = expr.evaluate(context)
    except Exception:  # noqa: BLE001  (a missing field: neither true nor false)
        return None
    return value if isinstance(value, bool) else None


CONTEXT_NAMES = ("reading", "sensors", "device", "now_local_hour", "now_local_weekday", "in_business_hours")
_CLOCK_NAMES = frozenset(CONTEXT_NAMES[3:])
_SAFE_FRACTION = 0.9999994  # below this, a Unix time does not round up to the next second


def _names_read(exprs: Iterable[Expr]) -> frozenset[str]:
    """The context variables the expressions may read: every name that appears as a
    word in a source (a superset: a word in a string literal counts too) or that CEL
    reports as a variable."""
    found = set()
    for expr in exprs:
        for name in CONTEXT_NAMES:
            if name in expr.names or re.search(rf"\b{name}\b", expr.source):
                found.add(name)
    return frozenset(found)


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass
class _Rule:
    rule: AlertRule
    condition: Expr
    clear: Expr
    test: Test = field(init=False)  # `_truth` of the condition, through its shortcut
    test_clear: Test = field(init=False)  # `_truth` of the clear condition

    def __post_init__(self) -> None:
        decide = shortcut(self.rule.condition)
        self.test = _tester(self.condition, decide)
        negated = self.rule.clear_condition is None  # the default clear: `!(condition)`
        self.test_clear = _tester(self.clear, decide if negated else None, negate=True)


ALERT_STATES = ("open", "acknowledged", "cleared")


class AlertEngine:
    """Evaluates rules on readings and keeps the alerts' lifecycle.

    Args:
        rules: the rules, each name once.
        persist: awaited with a copy of the alert after every change.
        notify: awaited with a copy (plus `event`) when an alert is raised, notified
            again after its cooldown, or cleared; its errors are logged, not raised.
        clock: the time source (Unix seconds).
        business_hours: for rules that do not carry their own.
        history: cleared alerts kept in memory for `list()`.

    A failed `persist` is retried on the next call and its error raised after the
    state is updated; evaluating the same reading again (same `device_id` and
    `timestamp`) does not count it twice, so a caller may retry a whole batch.
    """

    def __init__(
        self,
        rules: Iterable[AlertRule],
        *,
        persist: Hook,
        notify: Hook | None = None,
        clock: Callable[[], float] = time.time,
        business_hours: BusinessHours | None = None,
        history: int = 1000,
    ) -> None:
        self.rules: list[_Rule] = []
        for rule in rules:
            if any(r.rule.name == rule.name for r in self.rules):
                raise ValueError(f"two alert rules are named {rule.name!r}")
            clear = rule.clear_condition or f"!({rule.condition})"
            self.rules.append(_Rule(rule, Expr(rule.condition), Expr(clear)))
        self.persist = persist
        self.notify = notify
        self.clock = clock
        self.business_hours = business_hours or BusinessHours()
        # the context variables some rule reads: evaluate() builds only those
        needs = _names_read([e for r in self.rules for e in (r.condition, r.clear)])
        self._need_reading = "reading" in needs
        self._need_sensors = "sensors" in needs or self._need_reading
        self._need_device = "device" in needs
        self._need_clock = bool(needs & _CLOCK_NAMES)
        self._clock_memo: dict[int, tuple[BusinessHours, int, tuple[int, int, bool]]] = {}
        self._active: dict[tuple[str, str], dict[str, Any]] = {}
        self._cleared: deque[dict[str, Any]] = deque(maxlen=history)
        self._clear_since: dict[str, float] = {}
        self._notified: dict[str, float] = {}
        self._unsaved: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

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
        if now - second >= _SAFE_FRACTION:  # may round up to the next second: no memo
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

    async def evaluate(self, reading: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Apply every rule to one reading; the events (alert + `event`) it caused.

        `event` is `raised`, `repeated` (a repeat of an open alert) or `cleared`.
        """
        return await self.evaluate_many([reading])

    async def evaluate_many(self, readings: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """`evaluate` for a batch, in order: each changed alert is stored once, in its
        last state (an alert repeated by every reading of a batch is one write, not one
        per reading), and each event is told as it was when it happened."""
        now = self.clock()
        async with self._lock:
            changes: list[tuple[dict[str, Any], str, bool]] = []  # alert, event, notify
            for reading in readings:
                self._changes(reading, now, changes)
            if not changes and not self._unsaved:
                return []  # nothing to store or to tell
            return await self._apply(changes)

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
        fields = _Fields(
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

    async def _apply(self, changes: list[tuple[dict[str, Any], str, bool]]) -> list[dict[str, Any]]:
        """Persist (pending writes first; each alert once, in its last state), then
        notify; raise the last persist error. `changes` hold snapshots."""
        for alert, _, _ in changes:
            self._unsaved[alert["id"]] = alert  # a later snapshot of the same alert wins
        error: Exception | None = None
        for alert_id, snapshot in list(self._unsaved.items()):
            try:
                await self.persist(snapshot)
            except Exception as exc:  # noqa: BLE001  (kept and retried on the next call)
                error = exc
                continue
            if self._unsaved.get(alert_id) is snapshot:
                del self._unsaved[alert_id]
        events = []
        for alert, event, notify in changes:
            payload = {**alert, "event": event}
            events.append(payload)
            if notify and self.notify is not None:
                try:
                    await self.notify(dict(payload))
                except Exception as exc:  # noqa: BLE001  (a notification channel failed)
                    logger.warning("alert notification failed", alert=alert["id"], error=str(exc))
        if error is not None:
            logger.warning("alert not stored (retried later)", error=str(error))
            raise error
        return events

    # ----- API --------------------------------------------------------------------------
    def _find(self, alert_id: str) -> dict[str, Any] | None:
        for alert in self._active.values():
            if alert["id"] == alert_id:
                return alert
        return next((a for a in self._cleared if a["id"] == alert_id), None)

    async def acknowledge(self, alert_id: str) -> dict[str, Any] | None:
        """open -> acknowledged; the alert (unchanged when not open), or None if unknown."""
        async with self._lock:
            alert = self._find(alert_id)
            if alert is None:
                return None
            if alert["state"] != "open":
                return dict(alert)
            alert["state"] = "acknowledged"
            alert["acknowledged_at"] = rfc3339(self.clock())
            await self._apply([(dict(alert), "acknowledged", False)])
            return dict(alert)

    async def clear(self, alert_id: str) -> dict[str, Any] | None:
        """open/acknowledged -> cleared (and notified); None if unknown."""
        async with self._lock:
            alert = self._find(alert_id)
            if alert is None:
                return None
            if alert["state"] == "cleared":
                return dict(alert)
            self._close(alert, self.clock())
            await self._apply([(dict(alert), "cleared", True)])
            return dict(alert)

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
            alert = _restore(row)
            if alert is None or alert["state"] == "cleared":
                continue
            key = (alert["rule"], alert["device_id"])
            current = self._active.get(key)
            if current is not None and current["last_seen"] >= alert["last_seen"]:
                continue
            self._active[key] = alert
            self._notified[alert["id"]] = _epoch(alert["last_seen"])


def _data(reading: Mapping[str, Any]) -> dict[str, Any]:
    """What an alert keeps of the reading that raised (or repeated) it."""
    return {"timestamp": reading.get("timestamp"), "sensors": reading.get("sensors")}


def _time_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return rfc3339(value.timestamp())
    if isinstance(value, int | float):
        return rfc3339(float(value))
    return str(value)


def _epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _restore(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """A stored row (times as datetime or text, data as JSON text or object) as an alert."""
    try:
        data = row.get("data")
        if isinstance(data, str | bytes):
            data = msgspec.json.decode(data)
        state = str(row.get("state") or "open")
        first = _time_text(row.get("first_seen"))
        return {
            "id": str(row["id"]),
            "rule": str(row["rule"]),
            "device_id": str(row["device_id"]),
            "severity": str(row.get("severity") or "warning"),
            "state": state if state in ALERT_STATES else "open",
            "message": str(row.get("message") or ""),
            "count": int(row.get("count") or 1),
            "first_seen": first,
            "last_seen": _time_text(row.get("last_seen")) or first,
            "acknowledged_at": _time_text(row.get("acknowledged_at")),
            "cleared_at": _time_text(row.get("cleared_at")),
            "data": data if isinstance(data, dict) else {},
        }
    except (KeyError, TypeError, ValueError, msgspec.DecodeError) as exc:
        logger.warning("stored alert skipped", error=str(exc))
        return None


class Webhooks:
    """POST alerts as JSON to URLs, signed, with retries; never raises into the caller.

    Args:
        urls: where to POST.
        secret: HMAC-SHA256 key; the body's signature goes in
            `X-Wireway-Signature: sha256=<hex>` (no header without a secret).
        timeout: seconds per request.
        retries: attempts after the first, with exponential backoff and jitter,
            on a connection error, a timeout, 408, 429 or 5xx.
        backoff_base: seconds; the n-th retry waits up to `backoff_base * 2**(n-1)`.
    """

    SIGNATURE_HEADER = "X-Wireway-Signature"

    def __init__(
        self,
        urls: Iterable[str],
        *,
        secret: str | None = None,
        timeout: float = 5.0,
        retries: int = 3,
        backoff_base: float = 0.5,
    ) -> None:
        self.urls = list(urls)
        bad = [u for u in self.urls if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"webhook URLs must be http:// or https://: {', '.join(bad)}")
        self.secret = secret.encode() if secret else None
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self.failed = 0
        self.delivered = 0
        self._client: httpx.AsyncClient | None = None

    def sign(self, body: bytes) -> str | None:
        """The signature header value for a body, or None without a secret."""
        if self.secret is None:
            return None
        return "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    async def send(self, alert: Mapping[str, Any]) -> bool:
        """POST to every URL (concurrently); True when all of them answered 2xx."""
        if not self.urls:
            return True
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
        body = msgspec.json.encode(alert)
        headers = {"content-type": "application/json", "user-agent": "wireway-alerts"}
        signature = self.sign(body)
        if signature:
            headers[self.SIGNATURE_HEADER] = signature
        results = await asyncio.gather(*(self._post(u, body, headers) for u in self.urls))
        return all(results)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> bool:
        import httpx

        assert self._client is not None
        why = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(backoff(attempt, self.backoff_base, 30.0))
            try:
                response = await self._client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
                continue
            except Exception as exc:  # noqa: BLE001  (never raise into the alert path)
                why = f"{type(exc).__name__}: {exc}"
                break
            status = response.status_code
            if 200 <= status < 300:
                self.delivered += 1
                return True
            why = f"HTTP {status}"
            if status < 500 and status not in (408, 429):
                break  # retrying cannot help
        self.failed += 1
        logger.warning("webhook delivery failed", url=url, error=why)
        return False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
