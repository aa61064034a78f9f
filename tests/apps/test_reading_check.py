"""The fast reading check agrees with the sensor_reading JSON Schema."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_support import SAMPLES

from wireway.apps.sensor_ingest.enrich import schema_errors
from wireway.apps.sensor_ingest.reading import check_reading

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


@settings(max_examples=int(os.environ.get("WIREWAY_HYPOTHESIS_EXAMPLES", "400")))
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
