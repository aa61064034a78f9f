"""The fast reading check agrees with the sensor_reading JSON Schema."""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_support import SAMPLES

from wireway.apps.sensor_ingest import reading
from wireway.apps.sensor_ingest.enrich import schema_errors
from wireway.apps.sensor_ingest.reading import check_reading
from wireway.bench.load import reading_json

anything = (
    st.none()
    | st.booleans()
    | st.integers(-10, 5000)
    | st.floats(-5, 700, allow_nan=False)
    | st.text(max_size=5)
)
numbers = st.integers(-10, 5000) | st.floats(-5, 700, allow_nan=False) | st.booleans() | st.text(max_size=3)


def maybe(d: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Sub-dictionaries of `d`'s strategies (any key may be missing)."""
    return st.fixed_dictionaries({}, optional=d)


radar = maybe(
    {
        "presence": st.booleans() | anything,
        "distance": numbers,
        "energy": numbers,
        "moving_distance": numbers,
        "still_energy": numbers,
        "has_moving_target": st.booleans() | anything,
    }
)
pir = maybe({"motion_detected": st.booleans() | anything})
gas = maybe(
    {
        "gas_concentration": numbers,
        "unit": st.sampled_from(["ppm", "ppb", "x"]) | anything,
        "raw": st.integers(-5, 5000) | st.floats(0, 10) | anything,
    }
)
sensors = maybe(
    {
        "ld2410": radar | anything,
        "pir": pir | anything,
        "mq134": gas | anything,
        "bme280": st.dictionaries(st.text(max_size=3), anything, max_size=2) | anything,
    }
)
readings = maybe(
    {
        "device_id": st.from_regex(r"[A-Za-z0-9._:-]{1,8}", fullmatch=True) | anything | st.just("x" * 101),
        "timestamp": st.sampled_from(
            [
                "2025-10-16T18:33:58Z",
                "2025-10-16T18:33:58.123+02:00",
                "not-a-date",
                "2999-01-01T00:00:00Z",
                "2025-10-16",
            ]
        )
        | anything,
        "sensors": sensors | anything,
    }
)


# the reference validator is built on first use: no deadline for the example that builds it
@settings(max_examples=int(os.environ.get("WIREWAY_HYPOTHESIS_EXAMPLES", "400")), deadline=None)
@given(readings)
def test_fast_check_matches_the_schema(value: dict[str, Any]) -> None:
    """Same verdict and the same messages, whatever the reading."""
    assert sorted(check_reading(value)) == sorted(schema_errors(value))


def test_samples_agree() -> None:
    """The team's sample payloads give the same result both ways."""
    for name, sample in SAMPLES.items():
        if not name.startswith("_"):
            assert check_reading(sample) == schema_errors(sample), name
            assert (check_reading(sample) == []) == name.startswith("valid"), name


# Near-valid readings: plain values around every bound, so the fast path (which only
# ever answers "valid") is exercised on the edges where it must hand over.
def edge_numbers(high: int) -> st.SearchStrategy[Any]:
    return st.sampled_from([0, -0.0, 0.5, high, high + 0.5, high + 1, -1, True, 1.0]) | st.integers(
        -2, high + 2
    )


near_radar = st.fixed_dictionaries(
    {"presence": st.booleans() | st.just(1)},
    optional={
        "distance": edge_numbers(600),
        "energy": edge_numbers(100),
        "detection_distance": edge_numbers(600),
        "still_energy": edge_numbers(100),
        "has_still_target": st.booleans() | st.just(0),
        "extra": anything,
    },
)
near_gas = st.fixed_dictionaries(
    {"gas_concentration": edge_numbers(1000) | st.floats(allow_nan=True) | st.none()},
    optional={"unit": st.sampled_from(["ppm", "ppb", "PPM"]), "raw": edge_numbers(4095)},
)
near_valid = st.fixed_dictionaries(
    {
        "device_id": st.sampled_from(["esp32-01", "a", "x" * 100, "x" * 101, "", "bad id", "ok\n", "é"]),
        "timestamp": st.sampled_from(
            [
                "2025-10-16T18:33:58Z",
                "2025-10-16T18:33:58.1Z",
                "2025-10-16T18:33:58.123456Z",
                "2025-10-16T18:33:58.1234567Z",
                "2025-10-16T18:33:58Z\n",
                "2025-13-16T18:33:58Z",
                "2025-10-16t18:33:58z",
                "2999-01-01T00:00:00Z",
            ]
        ),
        "sensors": st.fixed_dictionaries(
            {},
            optional={
                "ld2410": near_radar,
                "pir": st.fixed_dictionaries({"motion_detected": st.booleans() | st.just(None)}),
                "mq134": near_gas,
                "bme280": st.dictionaries(st.text(max_size=3), anything, max_size=2) | st.just([]),
            },
        ),
    }
)


@settings(max_examples=int(os.environ.get("WIREWAY_HYPOTHESIS_EXAMPLES", "400")), deadline=None)
@given(near_valid)
def test_fast_path_edges_match_the_schema(value: dict[str, Any]) -> None:
    """On the bounds too, the fast check gives the schema's verdict and messages."""
    assert sorted(check_reading(value)) == sorted(schema_errors(value))


@settings(max_examples=int(os.environ.get("WIREWAY_HYPOTHESIS_EXAMPLES", "400")))
@given(near_valid | readings)
def test_fast_path_only_says_valid_when_it_is(value: dict[str, Any]) -> None:
    """The shortcut never passes a reading the full check would refuse."""
    now = time.time()
    if isinstance(value, dict) and reading._plainly_valid(value, now):
        assert reading._errors(value, now) == []


def test_bench_readings_take_the_fast_path() -> None:
    """Typical readings (as `wireway bench sensor` sends) skip the message-building check."""
    for seq in range(20):
        value = msgspec.json.decode(reading_json(seq % 3, time.time() - 1, seq))
        assert reading._plainly_valid(value, None), value
