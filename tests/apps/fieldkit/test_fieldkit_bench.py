"""`wireway bench fieldkit` end to end on tiny inputs (its figures are not checked)."""

from __future__ import annotations

import pytest

from conftest import ROOT, wireway


@pytest.mark.slow
def test_bench_fieldkit_reports_every_run() -> None:
    """Full speed, tracked devices and paced rows, every row an event; WigleToTAK is
    said not to run without its source."""
    result = wireway(
        "bench",
        "fieldkit",
        "--messages",
        "2000",
        "--latency-seconds",
        "0.5",
        "--tracked",
        "1000",
        cwd=ROOT,
        env={"COLUMNS": "250", "WIGLETOTAK_SRC": ""},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    assert "wireway bench fieldkit" in table
    assert "2,000/2,000" in table  # every full-speed row came back as an event
    assert "1,000/1,000" in table
    assert "500/500" in table
    assert "not run: no WigleToTAK source" in table
