"""validate, transform, filter and python on real messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from wireway.apps.sensor_ingest.app import SensorApp
from wireway.apps.sensor_ingest.enrich import EnrichConfig, SensorEnrich
from wireway.apps.sensor_ingest.metrics import INGESTED, _Ingested
from wireway.envelope import Message, from_value
from wireway.errors import ConfigError
from wireway.observability.metrics import REGISTRY
from wireway.processors.base import EngineView, Processor
from wireway.processors.dedupe import Dedupe, DedupeConfig, SeenCache
from wireway.processors.filter import Filter, FilterConfig
from wireway.processors.python import Python, PythonConfig
from wireway.processors.transform import Transform, TransformConfig
from wireway.processors.validate import Validate, ValidateConfig

GOOD = Path(__file__).resolve().parent.parent / "fixtures" / "good"


def msgs(*payloads: object) -> list[Message]:
    return [from_value(p, source="t") for p in payloads]


async def run(step: Processor, batch: list[Message]) -> tuple[list[Message], list[tuple[Message, list[str]]]]:
    """(passed, failed) of a step that emits nothing."""
    result = await step.process(batch)
    assert result.emitted == []
    return result.passed, result.failed


async def test_validate_names_every_failing_field() -> None:
    """Every broken rule is listed with its payload path."""
    v = Validate(ValidateConfig(schema="schemas/order.json"), base_dir=GOOD)
    passed, failed = await run(v, msgs({"id": 1, "total": 5}, {"id": 0, "total": -1}))
    assert [m.payload["id"] for m in passed] == [1]
    ((_, reasons),) = failed
    assert "payload.id: 0 is less than the minimum of 1" in reasons
    assert "payload.total: -1 is less than the minimum of 0" in reasons


def test_validate_missing_schema_is_a_config_error() -> None:
    """A schema that does not exist is refused at load time."""
    with pytest.raises(ConfigError, match="no schema file"):
        Validate(ValidateConfig(schema="nope.json"), base_dir=GOOD)


async def test_transform_set_rename_drop() -> None:
    """set evaluates CEL, rename moves, drop removes."""
    t = Transform(
        TransformConfig(
            set={
                "payload.seen_by": "'kit-01'",
                "payload.double": "payload.n * 2",
                "metadata.priority": "'high'",
            },
            rename={"payload.n": "payload.count"},
            drop=["payload.secret"],
        ),
        base_dir=GOOD,
    )
    passed, failed = await run(t, msgs({"n": 21, "secret": "x"}))
    assert failed == []
    assert passed[0].payload == {"seen_by": "kit-01", "double": 42, "count": 21}
    assert passed[0].metadata.priority == "high"


async def test_transform_error_goes_to_failed() -> None:
    """A mapping that cannot evaluate rejects that message with the reason."""
    t = Transform(TransformConfig(set={"payload.x": "payload.missing + 1"}), base_dir=GOOD)
    passed, failed = await run(t, msgs({"a": 1}))
    assert passed == []
    ((_, [reason]),) = failed
    assert reason.startswith("transform:")


async def test_filter_keeps_matching() -> None:
    """Messages for which the condition is false are dropped, not failed."""
    f = Filter(FilterConfig(when="payload.t > 20"), base_dir=GOOD)
    passed, failed = await run(f, msgs({"t": 25}, {"t": 10}, {"x": 1}))
    assert [m.payload for m in passed] == [{"t": 25}]
    assert failed == []


def test_filter_syntax_error_names_position() -> None:
    """A CEL syntax error is a config error with a column."""
    with pytest.raises(ConfigError, match="column"):
        Filter(FilterConfig(when="payload.t >"), base_dir=GOOD)


async def test_python_sync_async_and_exceptions(tmp_path: Path) -> None:
    """User functions may be sync or async; their exceptions fail the message only."""
    (tmp_path / "userfuncs.py").write_text(
        "async def enrich(m):\n"
        "    if m['payload'].get('boom'):\n"
        "        raise RuntimeError('boom')\n"
        "    return {**m['payload'], 'enriched': True}\n"
        "def drop_odd(m):\n"
        "    return None if m['payload']['n'] % 2 else m\n"
    )
    p = Python(PythonConfig(function="userfuncs:enrich"), base_dir=tmp_path)
    passed, failed = await run(p, msgs({"n": 1}, {"boom": 1}))
    assert passed[0].payload == {"n": 1, "enriched": True}
    assert failed[0][1] == ["python RuntimeError: boom"]
    d = Python(PythonConfig(function="userfuncs:drop_odd"), base_dir=tmp_path)
    passed, failed = await run(d, msgs({"n": 1}, {"n": 2}))
    assert [m.payload["n"] for m in passed] == [2]


def test_python_missing_function_is_config_error(tmp_path: Path) -> None:
    """An import error is reported at load time, not at the first message."""
    with pytest.raises(ConfigError, match="cannot import"):
        Python(PythonConfig(function="no_such_module_xyz:f"), base_dir=tmp_path)


def test_expressions_see_only_what_they_read() -> None:
    """The context handed to CEL keeps only the variables and fields an expression reads,
    and falls back to the whole value when it cannot tell."""
    from wireway.expr import Expr

    e = Expr("has(payload.a) && payload.a > 1 && metadata.priority == 'high'")
    ctx = {
        "payload": {"a": 2, "big": list(range(100))},
        "metadata": {"priority": "high", "ttl": None},
        "source": "x",
    }
    assert e.context(ctx) == {"payload": {"a": 2}, "metadata": {"priority": "high"}}
    assert e.test(ctx)
    assert Expr("size(payload) == 2").context(ctx)["payload"] == ctx["payload"]
    assert Expr("payload.all(k, k != 'zz')").test(ctx)
    assert Expr("payload['a'] == 2").test(ctx)
    assert not Expr("has(payload.zz)").test(ctx)


def ids(*message_ids: str) -> list[Message]:
    return [Message(message_id=i, timestamp="2026-01-01T00:00:00Z", payload={"n": i}) for i in message_ids]


async def test_dedupe_drops_repeats_within_a_batch_and_after_commit() -> None:
    """A key passes once per batch; once committed it is dropped in later batches."""
    d = Dedupe(DedupeConfig(), base_dir=GOOD)
    passed, failed = await run(d, ids("a", "b", "a"))
    assert [m.message_id for m in passed] == ["a", "b"]
    assert failed == []
    passed, _ = await run(d, ids("c", "d"))  # nothing committed yet: all new
    assert [m.message_id for m in passed] == ["c", "d"]
    d.committed(ids("a", "b"))
    passed, _ = await run(d, ids("b", "e", "a", "f"))
    assert [m.message_id for m in passed] == ["e", "f"]


async def test_dedupe_by_expression() -> None:
    """A CEL key dedupes on payload content; a key that cannot be evaluated fails the message."""
    d = Dedupe(DedupeConfig(key="payload.n"), base_dir=GOOD)
    batch = [*ids("x", "y"), Message(message_id="z", timestamp="2026-01-01T00:00:00Z", payload={})]
    passed, failed = await run(d, batch)
    assert [m.message_id for m in passed] == ["x", "y"]
    assert [m.message_id for m, _ in failed] == ["z"]
    assert failed[0][1][0].startswith("dedupe: cannot evaluate key")
    d.committed(passed)
    passed, _ = await run(d, ids("x", "w"))
    assert [m.message_id for m in passed] == ["w"]


@given(
    st.integers(1, 6),
    st.lists(st.lists(st.sampled_from("abcdefghij"), max_size=8), max_size=6),
)
def test_seen_cache_add_many_is_add_in_turn(size: int, batches: list[list[str]]) -> None:
    """Bulk adds leave the same keys, in the same order, as one add() per key."""
    one, many = SeenCache(size), SeenCache(size)
    for batch in batches:
        for key in batch:
            one.add(key)
        many.add_many(batch)
        assert list(many.order) == list(one.order)
        assert many.keys == one.keys == set(one.order)


def test_ingested_counts_a_batch_like_one_inc_per_reading() -> None:
    """sensor_data_ingested_total gets the same values from count() as per-reading incs."""
    readings = [
        {"device_id": f"d{i % 3}", "sensors": {t: {} for t in ["ld2410", "pir", "mq134"][: 1 + i % 3]}}
        for i in range(20)
    ] + [{"device_id": "d9", "sensors": {}}]
    for per_device in (False, True):
        labels = ["sensor_type", "device_id"] if per_device else ["sensor_type"]
        batched, single = _Ingested(), _Ingested()
        for ingested in (batched, single):
            ingested.per_device = per_device
            ingested.counter = Counter("t", "t", labels, registry=CollectorRegistry())
        batched.count(readings)
        for r in readings:
            for sensor_type in r["sensors"]:
                single.inc(sensor_type, r["device_id"])
        assert samples(batched) == samples(single)
        assert sum(samples(batched).values()) == sum(len(r["sensors"]) for r in readings) == 39


def samples(ingested: _Ingested) -> dict[tuple[tuple[str, str], ...], float]:
    assert ingested.counter is not None
    return {
        tuple(sorted(s.labels.items())): s.value
        for metric in ingested.counter.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    }


async def test_sensor_enrich_counts_committed_readings() -> None:
    """committed() adds each reading's sensors to sensor_data_ingested_total."""
    enrich = SensorEnrich(EnrichConfig(), base_dir=GOOD)
    enrich.use_service(SensorApp(view()))  # not started: no registry, every device accepted
    reading = {
        "device_id": "enrich-count-1",
        "timestamp": "2025-10-16T18:33:58.123Z",
        "sensors": {"pir": {"motion_detected": True}, "mq134": {"gas_concentration": 5}},
    }
    batch = [from_value(dict(reading), source="t") for _ in range(3)]
    passed, failed = await run(enrich, batch)
    assert (len(passed), failed) == (3, [])
    assert passed[0].payload["received_at"] == passed[0].timestamp
    assert passed[0].message_type == "sensor-data"
    before = {t: ingested(t, "enrich-count-1") for t in ("pir", "mq134")}
    enrich.committed(passed)
    after = {t: ingested(t, "enrich-count-1") for t in ("pir", "mq134")}
    assert {t: after[t] - before[t] for t in after} == {"pir": 3, "mq134": 3}


def view() -> EngineView:
    async def publish(messages: list[Message]) -> None:
        raise AssertionError("nothing to publish")

    return EngineView(Path("."), ("127.0.0.1", 0), lambda: 0, lambda: 0, publish)


def ingested(sensor_type: str, device_id: str) -> float:
    """The exported sensor_data_ingested_total for a sensor (and device, when per_device)."""
    labels = {"sensor_type": sensor_type}
    if INGESTED.per_device:
        labels["device_id"] = device_id
    return REGISTRY.get_sample_value("sensor_data_ingested_total", labels) or 0.0
