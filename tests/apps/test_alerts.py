"""Alert rules and lifecycle (with a fake clock) and signed webhooks (a real HTTP server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from wireway.apps.sensor_ingest.alerts import (
    AlertEngine,
    AlertRule,
    BusinessHours,
    alert_message,
    default_rules,
    normalize_sensors,
)

# 2025-10-14 is a Tuesday, 2025-10-18 a Saturday
TUESDAY_10 = datetime(2025, 10, 14, 10, 0, tzinfo=UTC).timestamp()
TUESDAY_22 = datetime(2025, 10, 14, 22, 0, tzinfo=UTC).timestamp()
SATURDAY_11 = datetime(2025, 10, 18, 11, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = TUESDAY_10) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """What the events of an engine would store (each alert's last state per call) and
    tell (the events marked `notify`)."""

    def __init__(self) -> None:
        self.persisted: list[dict[str, Any]] = []
        self.notified: list[dict[str, Any]] = []

    def record(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        last: dict[str, dict[str, Any]] = {}
        for event in events:
            if event["notify"]:
                self.notified.append(event)
            last[event["id"]] = {k: v for k, v in event.items() if k not in ("event", "notify")}
        self.persisted += last.values()
        return events


class Alerts:
    """An AlertEngine whose events a Recorder sees."""

    def __init__(self, engine: AlertEngine, rec: Recorder) -> None:
        self.engine, self.rec = engine, rec

    async def evaluate(self, reading: dict[str, Any]) -> list[dict[str, Any]]:
        return self.rec.record(self.engine.evaluate(reading))

    async def evaluate_many(self, readings: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.rec.record(self.engine.evaluate_many(readings))

    async def acknowledge(self, alert_id: str) -> dict[str, Any] | None:
        alert, events = self.engine.acknowledge(alert_id)
        self.rec.record(events)
        return alert

    async def clear(self, alert_id: str) -> dict[str, Any] | None:
        alert, events = self.engine.clear(alert_id)
        self.rec.record(events)
        return alert

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


_n = iter(range(1, 1_000_000))


def reading(
    device: str = "esp32-001",
    *,
    gas: float | None = None,
    unit: str = "ppm",
    presence: bool | None = None,
    motion: bool | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    sensors: dict[str, Any] = {}
    if gas is not None:
        sensors["mq134"] = {"gas_concentration": gas, "unit": unit}
    if presence is not None:
        sensors["ld2410"] = {"presence": presence, "distance": 100, "energy": 50}
    if motion is not None:
        sensors["pir"] = {"motion_detected": motion}
    return {
        "device_id": device,
        "timestamp": f"2025-10-14T10:00:{next(_n) % 60:02d}.{next(_n):06d}Z",
        "received_at": "2025-10-14T10:00:00Z",
        "sensors": sensors,
        "device_metadata": metadata if metadata is not None else {"location": "lab"},
    }


def engine(clock: Clock, rec: Recorder, rules: list[AlertRule] | None = None) -> Alerts:
    return Alerts(AlertEngine(default_rules() if rules is None else rules, clock=clock), rec)


async def test_a_batch_stores_each_alert_once_and_tells_events_as_they_happened() -> None:
    """evaluate_many: a device alerting on every reading of a batch is one event in its
    last state, unless people are told of an earlier one (then that one stays too)."""
    clock, rec = Clock(), Recorder()
    alerts = engine(clock, rec)
    batch = [
        reading(gas=650),
        reading(gas=700),
        reading(gas=100),
        reading("esp32-002", gas=900),
        reading(gas=800),
    ]
    events = await alerts.evaluate_many(batch)
    assert [(e["device_id"], e["event"], e["count"]) for e in events] == [
        ("esp32-001", "raised", 1),
        ("esp32-002", "raised", 1),
        ("esp32-001", "repeated", 3),
    ]
    assert [(a["device_id"], a["count"]) for a in rec.persisted] == [("esp32-001", 3), ("esp32-002", 1)]
    assert [(n["device_id"], n["event"], n["count"]) for n in rec.notified] == [
        ("esp32-001", "raised", 1),
        ("esp32-002", "raised", 1),
    ]


async def test_gas_spike_opens_one_alert_and_repeats_raise_its_count() -> None:
    """One open alert per rule and device; repeats count, re-notify only after the cooldown."""
    clock, rec = Clock(), Recorder()
    alerts = engine(clock, rec)
    assert await alerts.evaluate(reading(gas=250)) == []
    (raised,) = await alerts.evaluate(reading(gas=650))
    assert raised["event"] == "raised"
    assert raised["rule"] == "high_gas_concentration"
    assert raised["severity"] == "critical"
    assert raised["state"] == "open"
    assert raised["count"] == 1
    assert raised["device_id"] == "esp32-001"
    assert raised["message"] == "Gas concentration above 500 ppm on esp32-001"
    assert raised["first_seen"] == raised["last_seen"] == "2025-10-14T10:00:00.000Z"
    assert raised["acknowledged_at"] is None
    assert raised["cleared_at"] is None
    assert raised["data"]["sensors"]["mq134"]["gas_concentration"] == 650
    assert [n["event"] for n in rec.notified] == ["raised"]
    assert rec.persisted[-1]["id"] == raised["id"]
    assert "event" not in rec.persisted[-1]

    clock.advance(10)
    (repeat,) = await alerts.evaluate(reading(gas=700))
    assert repeat["event"] == "repeated"
    assert repeat["id"] == raised["id"]
    assert repeat["count"] == 2
    assert repeat["last_seen"] == "2025-10-14T10:00:10.000Z"
    assert repeat["first_seen"] == raised["first_seen"]
    assert len(rec.notified) == 1  # within the 60 s cooldown: stored, not notified
    assert rec.persisted[-1]["count"] == 2

    clock.advance(60)
    await alerts.evaluate(reading(gas=800))
    assert [n["event"] for n in rec.notified] == ["raised", "repeated"]
    assert rec.notified[-1]["count"] == 3
    # another device gets its own alert
    (other,) = await alerts.evaluate(reading("esp32-002", gas=900))
    assert other["id"] != raised["id"]
    assert len(alerts.list(state="open")) == 2
    assert [a["device_id"] for a in alerts.list(device_id="esp32-002")] == ["esp32-002"]


async def test_acknowledge_then_clear_when_the_condition_has_held() -> None:
    """ack stops re-notification; clear after clear_after_seconds of normal readings."""
    clock, rec = Clock(), Recorder()
    alerts = engine(clock, rec)
    (raised,) = await alerts.evaluate(reading(gas=650))
    acked = await alerts.acknowledge(raised["id"])
    assert acked is not None
    assert acked["state"] == "acknowledged"
    assert acked["acknowledged_at"] == "2025-10-14T10:00:00.000Z"
    assert rec.persisted[-1]["state"] == "acknowledged"
    assert await alerts.acknowledge("nope") is None

    clock.advance(120)
    (repeat,) = await alerts.evaluate(reading(gas=700))
    assert repeat["state"] == "acknowledged"
    assert repeat["count"] == 2
    assert [n["event"] for n in rec.notified] == ["raised"]  # acknowledged: no re-notify

    # normal readings: the wait starts at the first one
    assert await alerts.evaluate(reading(gas=100)) == []
    clock.advance(30)
    assert await alerts.evaluate(reading(gas=100)) == []
    clock.advance(20)
    # another spike starts the wait again
    await alerts.evaluate(reading(gas=900))
    clock.advance(1)
    assert await alerts.evaluate(reading(gas=100)) == []
    clock.advance(59)
    assert await alerts.evaluate(reading(gas=100)) == []
    clock.advance(1)
    # a reading without the gas sensor also counts as "condition false" for the default rule
    (cleared,) = await alerts.evaluate(reading(presence=False))
    assert cleared["event"] == "cleared"
    assert cleared["state"] == "cleared"
    assert cleared["id"] == raised["id"]
    assert cleared["cleared_at"] == "2025-10-14T10:03:51.000Z"
    assert cleared["count"] == 3
    assert rec.notified[-1]["event"] == "cleared"
    assert rec.persisted[-1]["state"] == "cleared"
    assert alerts.list(state="open") == []
    assert [a["id"] for a in alerts.list(state="cleared")] == [raised["id"]]

    # a new occurrence is a new alert
    (again,) = await alerts.evaluate(reading(gas=650))
    assert again["event"] == "raised"
    assert again["id"] != raised["id"]
    assert again["count"] == 1


async def test_clear_by_api() -> None:
    """clear() closes an open alert at once and notifies; clearing twice changes nothing."""
    clock, rec = Clock(), Recorder()
    alerts = engine(clock, rec)
    (raised,) = await alerts.evaluate(reading(gas=650))
    clock.advance(5)
    cleared = await alerts.clear(raised["id"])
    assert cleared is not None
    assert cleared["state"] == "cleared"
    assert cleared["cleared_at"] == "2025-10-14T10:00:05.000Z"
    assert rec.notified[-1]["event"] == "cleared"
    assert await alerts.clear(raised["id"]) == cleared
    assert await alerts.acknowledge(raised["id"]) == cleared
    assert await alerts.clear("unknown") is None
    (again,) = await alerts.evaluate(reading(gas=650))
    assert again["id"] != raised["id"]


async def test_custom_clear_condition_with_hysteresis() -> None:
    """A clear condition that is false restarts the wait; one that cannot be evaluated does not."""
    clock, rec = Clock(), Recorder()
    rule = AlertRule(
        name="gas_hysteresis",
        condition="sensors.mq134.gas_concentration_ppm > 500",
        clear_condition="sensors.mq134.gas_concentration_ppm < 300",
        clear_after_seconds=10,
        cooldown_seconds=0,
    )
    alerts = engine(clock, rec, [rule])
    (raised,) = await alerts.evaluate(reading(gas=600))
    await alerts.evaluate(reading(gas=200))  # the wait starts
    clock.advance(6)
    await alerts.evaluate(reading(gas=400))  # neither: the clear condition is false
    clock.advance(6)
    assert await alerts.evaluate(reading(gas=200)) == []  # so the wait started again
    clock.advance(5)
    assert await alerts.evaluate(reading(presence=True)) == []  # no gas: does not count
    clock.advance(5)
    (cleared,) = await alerts.evaluate(reading(gas=250))
    assert cleared["event"] == "cleared"
    assert cleared["id"] == raised["id"]
    # cooldown 0: every repeat notifies
    await alerts.evaluate(reading(gas=600))
    await alerts.evaluate(reading(gas=600))
    assert [n["event"] for n in rec.notified] == ["raised", "cleared", "raised", "repeated"]


async def test_unauthorized_presence_only_outside_hours_and_in_secure_areas() -> None:
    """Radar presence or PIR motion on a secure_area device, outside business hours."""
    clock, rec = Clock(TUESDAY_10), Recorder()
    alerts = engine(clock, rec)
    secure = {"location": "vault", "secure_area": True}
    assert await alerts.evaluate(reading(presence=True, metadata=secure)) == []  # office hours
    clock.now = TUESDAY_22
    assert await alerts.evaluate(reading("open-plan", presence=True)) == []  # not secure
    assert await alerts.evaluate(reading("no-meta", motion=True, metadata={})) == []
    assert await alerts.evaluate(reading("flag-off", motion=True, metadata={"secure_area": False})) == []
    assert await alerts.evaluate(reading(presence=False, motion=False, metadata=secure)) == []
    (night,) = await alerts.evaluate(reading(motion=True, metadata=secure))  # PIR alone
    assert night["rule"] == "unauthorized_presence"
    assert night["severity"] == "warning"
    assert night["message"] == "Presence in secure area outside business hours on esp32-001 (vault)"
    clock.now = SATURDAY_11  # weekend: outside business hours although 11:00
    (weekend,) = await alerts.evaluate(reading("esp32-003", presence=True, metadata=secure))
    assert weekend["rule"] == "unauthorized_presence"


async def test_business_hours_follow_the_time_zone() -> None:
    """Hours are local to the configured zone; `now_local_*` are in the context too."""
    clock, rec = Clock(datetime(2025, 10, 14, 13, 0, tzinfo=UTC).timestamp()), Recorder()
    tokyo = BusinessHours(timezone="Asia/Tokyo")  # 13:00 UTC is 22:00 in Tokyo
    alerts = Alerts(AlertEngine(default_rules(business_hours=tokyo), clock=clock), rec)
    context = alerts.context(reading(), tokyo)
    assert context["now_local_hour"] == 22
    assert context["now_local_weekday"] == 1
    assert context["in_business_hours"] is False
    secure = {"secure_area": True}
    (raised,) = await alerts.evaluate(reading(presence=True, metadata=secure))
    assert raised["rule"] == "unauthorized_presence"
    assert BusinessHours().contains(clock.now) is True  # 13:00 UTC on a Tuesday
    overnight = BusinessHours(start_hour=22, end_hour=6, days=[0, 1, 2, 3, 4, 5, 6])
    assert overnight.contains(TUESDAY_22) is True
    assert overnight.contains(TUESDAY_10) is False
    with pytest.raises(msgspec.ValidationError, match="unknown time zone"):
        msgspec.convert({"timezone": "Mars/Olympus"}, BusinessHours)


async def test_ppb_is_converted_to_ppm_before_comparing() -> None:
    """600 ppb is 0.6 ppm (no alert); 600000 ppb is 600 ppm (alert)."""
    clock, rec = Clock(), Recorder()
    alerts = engine(clock, rec)
    assert normalize_sensors({"mq134": {"gas_concentration": 750, "unit": "ppb"}}) == {
        "mq134": {"gas_concentration": 750, "unit": "ppb", "gas_concentration_ppm": 0.75}
    }
    assert await alerts.evaluate(reading(gas=600, unit="ppb")) == []
    (raised,) = await alerts.evaluate(reading(gas=600_000, unit="ppb"))
    assert raised["rule"] == "high_gas_concentration"
    assert raised["data"]["sensors"]["mq134"] == {"gas_concentration": 600_000, "unit": "ppb"}
    custom = default_rules(gas_threshold_ppm=0.5)
    low = AlertEngine(custom, clock=clock)
    assert len(low.evaluate(reading("esp32-004", gas=600, unit="ppb"))) == 1


async def test_the_same_reading_again_is_not_counted_twice() -> None:
    """A reading evaluated again (a batch ingested again) changes nothing."""
    clock, rec = Clock(), Recorder()
    alerts = engine(clock, rec)
    spike = reading(gas=650)
    assert len(await alerts.evaluate(spike)) == 1
    assert await alerts.evaluate(spike) == []
    assert alerts.list()[0]["count"] == 1


def test_alert_message_ids_name_the_alert_and_its_transition() -> None:
    """opened, count raised, acknowledged, cleared: one id each, the same every time the
    same transition is made a message (a redelivery is the same event)."""
    clock = Clock()
    alerts = AlertEngine(default_rules(), clock=clock)
    (raised,) = alerts.evaluate(reading(gas=650))
    alert_id = raised["id"]
    clock.advance(61)
    (repeated,) = alerts.evaluate(reading(gas=700))
    _, (acked,) = alerts.acknowledge(alert_id)
    _, (cleared,) = alerts.clear(alert_id)
    ids = [alert_message(e).message_id for e in (raised, repeated, acked, cleared)]
    assert ids == [
        f"alert-{alert_id}-opened",
        f"alert-{alert_id}-count-2",
        f"alert-{alert_id}-acknowledged",
        f"alert-{alert_id}-cleared",
    ]
    assert [alert_message(e).message_id for e in (raised, repeated, acked, cleared)] == ids
    message = alert_message(repeated)
    assert message.message_type == "alert"
    assert message.payload["notify"] is True
    assert (acked["notify"], cleared["notify"]) == (False, True)
    assert alerts.acknowledge(alert_id) == (alerts.list()[0], [])  # nothing changes: no event


async def test_load_restores_open_alerts() -> None:
    """Rows from the database (datetimes, JSON text) come back; a repeat updates them."""
    clock, rec = Clock(), Recorder()
    alerts = engine(clock, rec)
    alerts.load(
        [
            {
                "id": "01ALERT",
                "rule": "high_gas_concentration",
                "device_id": "esp32-001",
                "severity": "critical",
                "state": "acknowledged",
                "message": "stored",
                "count": 4,
                "first_seen": datetime(2025, 10, 14, 9, 0, tzinfo=UTC),
                "last_seen": "2025-10-14T09:30:00.000Z",
                "acknowledged_at": datetime(2025, 10, 14, 9, 5, tzinfo=UTC),
                "cleared_at": None,
                "data": json.dumps({"timestamp": "x", "sensors": {}}),
            },
            {"id": "broken"},
        ]
    )
    (restored,) = alerts.list()
    assert restored["first_seen"] == "2025-10-14T09:00:00.000Z"
    assert restored["acknowledged_at"] == "2025-10-14T09:05:00.000Z"
    assert restored["data"] == {"timestamp": "x", "sensors": {}}
    (repeat,) = await alerts.evaluate(reading(gas=700))
    assert repeat["id"] == "01ALERT"
    assert repeat["count"] == 5
    assert repeat["state"] == "acknowledged"


def test_rules_are_checked_when_loaded() -> None:
    """A CEL syntax error or a duplicate name is refused with a clear message."""
    with pytest.raises(msgspec.ValidationError, match="CEL syntax error"):
        msgspec.convert({"name": "x", "condition": "sensors.mq134 >"}, AlertRule)
    with pytest.raises(msgspec.ValidationError, match="Object contains unknown field"):
        msgspec.convert({"name": "x", "condition": "true", "level": "high"}, AlertRule)
    rule = msgspec.convert({"name": "x", "condition": "true"}, AlertRule)
    assert (rule.severity, rule.cooldown_seconds, rule.clear_after_seconds) == ("warning", 60, 60)

    with pytest.raises(ValueError, match="two alert rules are named 'x'"):
        AlertEngine([rule, rule])


# ----- the fast paths: shortcuts, the narrowed context, the clock memo ---------------------
def _old_normalize(sensors: Any) -> Any:
    """normalize_sensors as it was written first (the reference)."""
    if not isinstance(sensors, dict):
        return {}
    gas = sensors.get("mq134")
    if not isinstance(gas, dict):
        return sensors
    value = gas.get("gas_concentration")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return sensors
    unit = str(gas.get("unit") or "ppm").lower()
    ppm = value / 1000 if unit == "ppb" else value
    return {**sensors, "mq134": {**gas, "gas_concentration_ppm": float(ppm)}}


def _sensor_variants() -> list[Any]:
    gases: list[Any] = [
        {"gas_concentration": v, "unit": u}
        for v in (120, 500, 501, 500.0, 0.4, 600_000, True, "600", None, float("nan"), 10**400)
        for u in ("ppm", "PPB", "ppb", None, 3)
    ]
    gases += [
        {"gas_concentration_ppm": 900},
        {"gas_concentration_ppm": "900"},
        {"gas_concentration": 10, "gas_concentration_ppm": 900},
        {},
        "gas",
        None,
        [1],
    ]
    radar: list[Any] = [{"presence": p, "distance": 1} for p in (True, False, 1, "true", None)] + [{}, 7]
    out: list[Any] = [None, [], "x", {}]
    out += [{"mq134": g} for g in gases]
    out += [{"ld2410": r, "pir": {"motion_detected": m}} for r in radar for m in (True, False, None)]
    out += [{"ld2410": r, "mq134": g} for r in radar[:2] for g in gases[:12]]
    return out


def _devices() -> list[Any]:
    flags: list[Any] = [True, False, 1, 1.0, "true", None, {}]
    return [None, [], "x", {}, {"location": "lab"}] + [{"secure_area": f, "location": "v"} for f in flags]


def _truth_or_error(fn: Any, context: dict[str, Any]) -> Any:
    try:
        return fn(context)
    except OverflowError:
        return "OverflowError"


def test_normalize_sensors_is_unchanged() -> None:
    for sensors in _sensor_variants():
        assert _truth_or_error(normalize_sensors, sensors) == _truth_or_error(_old_normalize, sensors) or (
            repr(normalize_sensors(sensors)) == repr(_old_normalize(sensors))  # nan != nan
        )


def test_default_conditions_are_unchanged() -> None:
    gas, presence = default_rules(500, BusinessHours())
    assert gas.condition == (
        "has(sensors.mq134) && has(sensors.mq134.gas_concentration_ppm)"
        " && sensors.mq134.gas_concentration_ppm > 500.0"
    )
    assert presence.condition == (
        "has(device.secure_area) && device.secure_area == true && ((has(sensors.ld2410)"
        " && has(sensors.ld2410.presence) && sensors.ld2410.presence == true) || (has(sensors.pir)"
        " && has(sensors.pir.motion_detected) && sensors.pir.motion_detected == true))"
        " && !in_business_hours"
    )


@pytest.mark.parametrize("threshold", [500, 0.5, 1e-05, 3, 2.5e17])
def test_shortcuts_agree_with_the_expressions(threshold: float) -> None:
    """Conditions and default clear conditions: the same True / False / None on every context."""
    from wireway.apps.sensor_ingest.alerts.rules import truth as _truth

    alerts = AlertEngine(default_rules(threshold), clock=Clock(TUESDAY_22))
    hours = alerts.business_hours
    contexts: list[dict[str, Any]] = [{}, {"sensors": None, "device": None}]
    for sensors in _sensor_variants():
        for device in _devices():
            r = {"device_id": "d", "timestamp": "t", "sensors": sensors, "device_metadata": device}
            try:
                contexts.append(alerts.context(r, hours))
                contexts.append(alerts._context(r, hours, TUESDAY_22))
            except OverflowError:
                continue
            contexts.append({"sensors": sensors, "device": device, "in_business_hours": True})
    settled = 0
    for compiled in alerts.rules:
        for context in contexts:
            assert compiled.test(context) == _truth(compiled.condition, context), (
                compiled.rule.name,
                context,
            )
            assert compiled.test_clear(context) == _truth(compiled.clear, context), context
            settled += 1
    assert settled > 1000


async def test_a_custom_clear_condition_is_not_shortcut() -> None:
    """Only `!(condition)` is answered from the condition's shortcut."""
    gas = default_rules()[0]
    rule = AlertRule(
        name=gas.name, condition=gas.condition, clear_condition="sensors.mq134.gas_concentration < 400"
    )
    alerts = AlertEngine([rule], clock=Clock())
    (compiled,) = alerts.rules
    context = {"sensors": {"mq134": {"gas_concentration": 450, "gas_concentration_ppm": 450.0}}}
    assert compiled.test(context) is False
    assert compiled.test_clear(context) is False  # 450 < 400 is false, although !(condition) holds


def test_the_context_holds_what_the_rules_read() -> None:
    """evaluate() builds only the variables the rules name, with the values context() gives."""

    r = reading(gas=700, presence=True, metadata={"secure_area": True})
    tokyo = BusinessHours(timezone="Asia/Tokyo")
    rules = [
        AlertRule(name="a", condition="sensors.pir.motion_detected == true"),
        AlertRule(name="b", condition="now_local_hour > 3", business_hours=tokyo),
        AlertRule(name="c", condition="size(reading) > 0", clear_condition="device.x == 1"),
    ]
    for chosen, names in [
        (rules[:1], {"sensors"}),
        (rules[:2], {"sensors", "now_local_hour", "now_local_weekday", "in_business_hours"}),
        (rules[2:], {"reading", "sensors", "device"}),
    ]:
        alerts = AlertEngine(chosen)
        for hours in (alerts.business_hours, tokyo):
            full = alerts.context(r, hours, TUESDAY_22)
            assert alerts._context(r, hours, TUESDAY_22) == {k: full[k] for k in names}


def test_the_clock_memo_gives_what_the_clock_gives() -> None:
    """Local hour, weekday and business hours, memoized per second, near second and hour edges too."""

    alerts = AlertEngine(default_rules())
    zones = [BusinessHours(), BusinessHours(timezone="Asia/Kolkata", start_hour=8.5, end_hour=17.999)]
    edge = datetime(2025, 10, 14, 17, 59, 59, tzinfo=UTC).timestamp()
    for hours in zones:
        for base in (edge, TUESDAY_10, TUESDAY_22 - 1, SATURDAY_11):
            for offset in (0, 0.25, 0.9999994, 0.9999996, 0.99999999, 1, 1.5, -0.0000004):
                now = base + offset
                local = hours.local(now)
                expected = (local.hour, local.weekday(), hours.contains(now))
                assert alerts._local(hours, now) == expected, (hours.timezone, now)
                assert alerts._local(hours, now) == expected
