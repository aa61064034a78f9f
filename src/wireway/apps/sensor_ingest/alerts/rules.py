"""Alert rules: their options, the default rules and how a condition is tested.

A rule is a CEL condition over one enriched reading. Its context:

- `reading`: the reading (`device_id`, `timestamp`, `received_at`, `sensors`,
  `device_metadata`), `sensors` (a shortcut) and `device` (the device metadata);
- `now_local_hour`, `now_local_weekday` (0 = Monday) and `in_business_hours`, from
  the clock in the time zone of the rule's (or the engine's) `BusinessHours`;
- an `mq134` sensor also carries `gas_concentration_ppm` (ppb divided by 1000), so
  thresholds compare in ppm whatever unit the device sent.

A condition that cannot be evaluated (a missing field) is false.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

from wireway.expr import Expr

Severity = Literal["info", "warning", "critical"]


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


Test = Callable[[dict[str, Any]], bool | None]  # `truth` of a rule's expression on a context


def _tester(expr: Expr, decide: Decide | None, negate: bool = False) -> Test:
    """`truth(expr, context)`, asking `decide` first (negated for a `!(condition)`)."""
    if decide is None or expr.fast is None:
        return lambda context: truth(expr, context)

    def test(context: dict[str, Any]) -> bool | None:
        settled = decide(context)
        if settled is None:
            return truth(expr, context)
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


def truth(expr: Expr, context: dict[str, Any]) -> bool | None:
    """True / False, or None when the expression cannot be evaluated or is not a bool."""
    try:
        value = expr.evaluate(context)
    except Exception:  # noqa: BLE001  (a missing field: neither true nor false)
        return None
    return value if isinstance(value, bool) else None


CONTEXT_NAMES = ("reading", "sensors", "device", "now_local_hour", "now_local_weekday", "in_business_hours")
CLOCK_NAMES = frozenset(CONTEXT_NAMES[3:])
SAFE_FRACTION = 0.9999994  # below this, a Unix time does not round up to the next second


def names_read(exprs: Iterable[Expr]) -> frozenset[str]:
    """The context variables the expressions may read: every name that appears as a
    word in a source (a superset: a word in a string literal counts too) or that CEL
    reports as a variable."""
    found = set()
    for expr in exprs:
        for name in CONTEXT_NAMES:
            if name in expr.names or re.search(rf"\b{name}\b", expr.source):
                found.add(name)
    return frozenset(found)


class TemplateFields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass
class CompiledRule:
    rule: AlertRule
    condition: Expr
    clear: Expr
    test: Test = field(init=False)  # `truth` of the condition, through its shortcut
    test_clear: Test = field(init=False)  # `truth` of the clear condition

    def __post_init__(self) -> None:
        decide = shortcut(self.rule.condition)
        self.test = _tester(self.condition, decide)
        negated = self.rule.clear_condition is None  # the default clear: `!(condition)`
        self.test_clear = _tester(self.clear, decide if negated else None, negate=True)
