"""`wireway bench file` end to end on tiny inputs (its figures are not checked)."""

from __future__ import annotations

import pytest

from conftest import ROOT, wireway


@pytest.mark.slow
def test_bench_file_reports_every_row() -> None:
    """Full speed and half rate rows for the memory buffer, with the udp leg when udp exists."""
    result = wireway(
        "bench",
        "file",
        "--messages",
        "2000",
        "--latency-seconds",
        "0.5",
        "--buffer",
        "memory",
        cwd=ROOT,
        env={"COLUMNS": "200"},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    assert "wireway bench file" in table
    assert table.count("full speed") >= 1
    assert "2,000" in table
