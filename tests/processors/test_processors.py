"""validate, transform, filter and python on real messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from wireway.envelope import Message, from_value
from wireway.errors import ConfigError
from wireway.processors.filter import Filter, FilterConfig
from wireway.processors.python import Python, PythonConfig
from wireway.processors.transform import Transform, TransformConfig
from wireway.processors.validate import Validate, ValidateConfig

GOOD = Path(__file__).resolve().parent.parent / "fixtures" / "good"


def msgs(*payloads: object) -> list[Message]:
    return [from_value(p, source="t") for p in payloads]


async def test_validate_names_every_failing_field() -> None:
    """Every broken rule is listed with its payload path."""
    v = Validate(ValidateConfig(schema="schemas/order.json"), base_dir=GOOD)
    passed, failed = await v.process(msgs({"id": 1, "total": 5}, {"id": 0, "total": -1}))
    assert [m.payload["id"] for m in passed] == [1]
    ((_, reason),) = failed
    assert reason.startswith("validation: ")
    assert "payload.id: 0 is less than the minimum of 1" in reason
    assert "payload.total: -1 is less than the minimum of 0" in reason


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
    passed, failed = await t.process(msgs({"n": 21, "secret": "x"}))
    assert failed == []
    assert passed[0].payload == {"seen_by": "kit-01", "double": 42, "count": 21}
    assert passed[0].metadata.priority == "high"


async def test_transform_error_goes_to_failed() -> None:
    """A mapping that cannot evaluate rejects that message with the reason."""
    t = Transform(TransformConfig(set={"payload.x": "payload.missing + 1"}), base_dir=GOOD)
    passed, failed = await t.process(msgs({"a": 1}))
    assert passed == []
    assert failed[0][1].startswith("transform:")


async def test_filter_keeps_matching() -> None:
    """Messages for which the condition is false are dropped, not failed."""
    f = Filter(FilterConfig(when="payload.t > 20"), base_dir=GOOD)
    passed, failed = await f.process(msgs({"t": 25}, {"t": 10}, {"x": 1}))
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
    passed, failed = await p.process(msgs({"n": 1}, {"boom": 1}))
    assert passed[0].payload == {"n": 1, "enriched": True}
    assert failed[0][1] == "python RuntimeError: boom"
    d = Python(PythonConfig(function="userfuncs:drop_odd"), base_dir=tmp_path)
    passed, failed = await d.process(msgs({"n": 1}, {"n": 2}))
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
