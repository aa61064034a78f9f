"""The filter step's pieces: remarks and WigleToTAK2's ellipse; the ellipse on the wire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kit_support import fieldkit, listening

from support import eventually
from wireway.apps.fieldkit.simulate import Simulator
from wireway.apps.fieldkit.steps import ellipse, remarks


@pytest.mark.parametrize(
    ("rssi", "factor", "accuracy", "major", "minor"),
    [
        (-60, 1.0, None, 120.0, 96.0),
        (-60, 2.0, None, 60.0, 48.0),  # high_gain hears farther: WigleToTAK2 divides by it
        (-60, 0.7, None, 171.4, 137.1),
        (-5, 1.0, None, 20.0, 16.0),  # at least 20 m
        (-300, 1.0, None, 500.0, 400.0),  # at most 500 m
        (-60, 1.0, 100.0, 200.0, 96.0),  # at least twice the accuracy
        (None, 1.0, None, 100.0, 80.0),  # no signal: WigleToTAK2's fallback
    ],
)
def test_ellipse_sizes(
    rssi: int | None, factor: float, accuracy: float | None, major: float, minor: float
) -> None:
    shape = ellipse({"rssi": rssi, "accuracy_m": accuracy}, factor, "AA:BB:CC:DD:EE:FF")["shape"]["ellipse"]
    assert (shape["@major"], shape["@minor"]) == (major, minor)
    again = ellipse({"rssi": rssi}, factor, "AA:BB:CC:DD:EE:FF")["shape"]["ellipse"]
    assert again["@angle"] == shape["@angle"]  # fixed per device: a refreshed marker does not turn


def test_remarks_name_what_is_known() -> None:
    text = remarks({"channel": 6, "frequency_mhz": 2437, "rssi": -61, "auth_mode": "[ESS]", "mac": "AA"})
    assert text == (
        "Channel: 6, Frequency: 2437 MHz, RSSI: -61 dBm, Authentication: [ESS], First seen: unknown, MAC: AA"
    )


async def test_the_ellipse_follows_the_antenna_setting(tmp_path: Path) -> None:
    sim = Simulator(devices=1, layout="1.4", seed=9)
    (device,) = sim.devices
    device.rssi = -70
    async with fieldkit(tmp_path, FIELDKIT_ELLIPSE="true") as kit, listening(kit.port) as tak:
        async with kit.client() as api:
            r = await api.post("/update_antenna_sensitivity", json={"antenna_sensitivity": "alfa_card"})
            assert r.status_code == 200
        path = kit.wigle / "Kismet-20261204-13-00-00-1.wiglecsv"
        path.write_text(sim.header() + sim.line(device), encoding="ascii")
        await eventually(lambda: len(tak.events) == 1)
    (event,) = tak.events
    assert event.get("type") == "u-d-c-e"
    shape = event.find("detail/shape/ellipse")
    assert shape is not None
    assert float(shape.get("major", 0)) == round(70 / 1.5 * 2, 1)


@given(
    st.dictionaries(
        st.sampled_from(["channel", "frequency_mhz", "rssi", "auth_mode", "first_seen", "mac"]),
        st.one_of(
            st.none(), st.just(""), st.integers(-100, 6000), st.floats(2400, 6000), st.text(max_size=5)
        ),
    )
)
def test_remarks_of_any_row(row: dict[str, Any]) -> None:
    """Each value written as it is, or `unknown` when missing or empty."""

    def shown(key: str, unit: str = "") -> str:
        value = row.get(key)
        return "unknown" if value is None or value == "" else f"{value}{unit}"

    assert remarks(row) == (
        f"Channel: {shown('channel')}, Frequency: {shown('frequency_mhz', ' MHz')}, "
        f"RSSI: {shown('rssi', ' dBm')}, Authentication: {shown('auth_mode')}, "
        f"First seen: {shown('first_seen')}, MAC: {shown('mac')}"
    )
