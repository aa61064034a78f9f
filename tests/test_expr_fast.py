"""The fast path for simple conditions agrees with the CEL library, errors included."""

from __future__ import annotations

import os
from typing import Any

import cel
from hypothesis import given, settings
from hypothesis import strategies as st

from wireway.expr_fast import ERROR, compile_simple

values = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.5, -1.0, 2.0])
    | st.sampled_from(["x", "y", ""])
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
