"""The fast path for simple conditions agrees with the CEL library, errors included."""

from __future__ import annotations

import os
from typing import Any

import cel
import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from wireway.envelope import Message
from wireway.expr import Expr
from wireway.expr_fast import ERROR, Reader, compile_simple, compile_value, light_context

values = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.5, -1.0, 2.0])
    | st.sampled_from(["x", "y", "", "é&<", "a\x00b"])
)
leaf = st.sampled_from(
    [
        "a",
        "a.x",
        "a.y",
        "b",
        "b.x",
        "c",
        "1",
        "-2",
        "0.5",
        "'x'",
        '"y"',
        "true",
        "false",
        "null",
        "has(a.x)",
        "has(b.z)",
        "has(a.x.y)",
        "!a",
        "!a.x",
        "'x' + a",
        "a + 'y' + b.x",
        'a.x + ""',
        "('x' + c)",
    ]
)


def exprs() -> st.SearchStrategy[str]:
    cmp = st.builds(
        lambda left, op, r: f"{left} {op} {r}",
        leaf,
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        leaf,
    )
    base = leaf | cmp
    return st.recursive(
        base,
        lambda inner: (
            st.builds(lambda left, op, r: f"({left}) {op} ({r})", inner, st.sampled_from(["&&", "||"]), inner)
            | st.builds(lambda e: f"!({e})", inner)
        ),
        max_leaves=6,
    )


contexts = st.fixed_dictionaries(
    {},
    optional={
        "a": st.dictionaries(
            st.sampled_from(["x", "y"]), values | st.dictionaries(st.just("y"), values), max_size=2
        )
        | values,
        "b": st.dictionaries(st.sampled_from(["x", "z"]), values, max_size=2) | values,
        "c": values,
    },
)


def reference(source: str, ctx: dict[str, Any]) -> Any:
    try:
        return cel.compile(source).execute(ctx)
    except Exception:  # noqa: BLE001  (any CEL error)
        return ERROR


@settings(max_examples=int(os.environ.get("WIREWAY_HYPOTHESIS_EXAMPLES", "500")), deadline=None)
@given(exprs(), contexts)
def test_same_result_as_cel(source: str, ctx: dict[str, Any]) -> None:
    """Value for value (and error for error) the same as the CEL library."""
    fn = compile_simple(source)
    if fn is None:
        return
    want = reference(source, ctx)
    got = fn(ctx)
    assert (got is ERROR) == (want is ERROR), (source, ctx, got, want)
    if got is not ERROR:
        assert got == want
        assert type(got) is type(want) or (isinstance(got, int | float) and isinstance(want, int | float))


def test_unsupported_forms_fall_back() -> None:
    """Calls, indexes, arithmetic and macros are left to CEL."""
    for source in [
        "size(a) > 1",
        "a[0] == 1",
        "a.x + 1 > 2",
        "a.all(k, k > 0)",
        "a in [1, 2]",
        "a ? 1 : 2",
        "1u == 1u",
    ]:
        assert compile_simple(source) is None, source


def test_string_joins_and_negation_bind_as_in_cel() -> None:
    """`+` is taken only in a chain with a string literal; `!` applies to its operand."""
    join = compile_simple('"wifi-" + payload.mac')
    assert join is not None
    assert join({"payload": {"mac": "AA"}}) == "wifi-AA"
    assert join({"payload": {"mac": 1}}) is ERROR
    assert join({"payload": {}}) is ERROR
    assert compile_simple("a + b") is None  # numbers, lists: CEL's own overloads
    assert compile_simple("a - 'x'") is None
    negated = compile_simple("!a == b")
    assert negated is not None
    assert negated({"a": 1, "b": 1}) is ERROR  # (!1) == 1: CEL cannot negate an int
    assert reference("!a == b", {"a": 1, "b": 1}) is ERROR


def test_only_reading_and_joining_is_a_value_mapping() -> None:
    for source in ["payload.mac", '"wifi-" + payload.mac', "1", "'x'", "payload.tak.detail"]:
        assert compile_value(source) is not None, source
    for source in ["a == b", "!a", "has(a.b)", "a && b", "a || b", "size(a)"]:
        assert compile_value(source) is None, source


class Shape(msgspec.Struct):
    x: int


payload_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.binary(max_size=3)
    | st.builds(Shape, st.integers(0, 3)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.sampled_from(["x", "y", "mac"]), inner, max_size=3)
    ),
    max_leaves=8,
)
mappings = st.sampled_from(
    [
        "payload.mac",
        "payload.x.y",
        '"wifi-" + payload.mac',
        "payload.mac + '-' + source",
        "payload",
        "payload.x",
        "metadata.ttl",
        "messageType",
        "'x'",
        "3",
    ]
)


def converted(expr: Expr, msg: Message) -> Any:
    try:
        return expr.evaluate(msg.to_context())
    except Exception:  # noqa: BLE001  (any CEL error)
        return ERROR


@settings(max_examples=int(os.environ.get("WIREWAY_HYPOTHESIS_EXAMPLES", "500")), deadline=None)
@given(mappings, st.dictionaries(st.sampled_from(["mac", "x", "y"]), payload_values, max_size=3))
def test_a_reader_gives_what_the_converted_message_gives(source: str, payload: dict[str, Any]) -> None:
    """Bytes, tuples, structs, big integers in the payload: the reader's value is the
    value (or the error) of the expression over the message converted to builtins."""
    expr = Expr(source)
    msg = Message("id-1", "2026-12-04T10:00:00.000Z", payload, "kismet")
    want = converted(expr, msg)
    try:
        got = Reader(expr)(light_context(msg), msg.to_context)
    except Exception:  # noqa: BLE001
        got = ERROR
    assert (got is ERROR) == (want is ERROR), (source, payload, got, want)
    if got is not ERROR:
        assert got == want or (got != got and want != want)
        assert type(got) is type(want)
