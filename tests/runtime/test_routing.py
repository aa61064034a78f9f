"""Routing decides a `when:` by the messageType alone where the type settles it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wireway.expr import Expr

CONDITIONS = [
    'messageType == "alert" && payload.notify',
    'payload.notify && messageType == "alert"',
    'messageType == "sensor-data" || messageType == "occupancy" || (messageType == "alert" && payload.notify)',
    'messageType == "sensor-data"',
    'messageType == "x" ? payload.a == 1 : false',
    "payload.total > 100",
    'metadata.priority == "high"',
]
TYPES = ["sensor-data", "alert", "occupancy", "x"]


def decided_by_type(when: Expr, message_type: str) -> bool | None:
    return when.settled_by({"messageType": message_type})


def test_what_the_type_settles() -> None:
    """A result reached without the payload is kept; one that needs it is left to each message."""
    settled = {c: [decided_by_type(Expr(c), t) for t in TYPES] for c in CONDITIONS}
    assert settled['messageType == "alert" && payload.notify'] == [False, None, False, False]
    assert settled['payload.notify && messageType == "alert"'] == [False, None, False, False]
    assert settled[CONDITIONS[2]] == [True, None, True, False]
    assert settled['messageType == "sensor-data"'] == [True, False, False, False]
    assert settled["payload.total > 100"] == [None] * 4
    assert settled['metadata.priority == "high"'] == [None] * 4


payloads = st.dictionaries(
    st.sampled_from(["notify", "a", "total"]),
    st.one_of(st.booleans(), st.integers(-5, 200), st.text(max_size=3), st.none()),
)


@pytest.mark.parametrize("condition", CONDITIONS)
@given(message_type=st.sampled_from(TYPES), payload=payloads)
def test_a_settled_condition_agrees_with_every_message(
    condition: str, message_type: str, payload: dict[str, object]
) -> None:
    """Whatever the payload, a condition the type settled tests the same on the whole message."""
    when = Expr(condition)
    decided = decided_by_type(when, message_type)
    if decided is not None:
        context = {"messageType": message_type, "payload": payload, "metadata": {"priority": "normal"}}
        assert when.test(context) is decided
