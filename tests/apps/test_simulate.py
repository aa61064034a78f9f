"""The simulator's readings: valid, and never two with one device_id and timestamp."""

from __future__ import annotations

import msgspec

from wireway.apps.sensor_ingest.reading import check_reading
from wireway.apps.sensor_ingest.simulate import Simulator


def test_readings_are_valid_and_unique_per_device_and_timestamp() -> None:
    """Generated faster than one a millisecond per device: a float `last + 0.001` used to
    print as the same millisecond now and then, which the service takes as a resend."""
    sim = Simulator(devices=3, malformed=0, anomalies=0.05)
    readings = [msgspec.json.decode(sim.next(i)[1]) for i in range(30_000)]
    assert len({(r["device_id"], r["timestamp"]) for r in readings}) == len(readings)
    assert all(check_reading(r) == [] for r in readings[:2000])
    assert readings[0]["timestamp"].endswith("Z")
    assert len(readings[0]["timestamp"]) == len("2025-10-16T18:33:58.123Z")
