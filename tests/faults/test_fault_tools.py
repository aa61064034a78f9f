"""The tools around the fault tests: the table script and the soak script still run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

ROW = {
    "test": "demo",
    "fault": "demo fault",
    "acknowledged": 1200,
    "delivered": 1210,
    "lost": 0,
    "duplicates": 3,
    "recovery_s": 1.234,
    "finished_at": "2026-01-01T00:00:00Z",
    "duplicates_note": "resent",
}


def table(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/faults_table.py"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_faults_table_replaces_the_table_between_its_markers(tmp_path: Path) -> None:
    rows = tmp_path / "rows"
    rows.mkdir()
    (rows / "demo.json").write_text(json.dumps(ROW))
    doc = tmp_path / "doc.md"
    doc.write_text("# T\n\n<!-- faults-table -->\nold\n<!-- /faults-table -->\n\nafter\n")
    result = table("--from", str(rows), "--write", str(doc))
    assert result.returncode == 0, result.stderr
    text = doc.read_text()
    assert "old" not in text
    assert "| demo fault | 1,200 | 1,210 | 0 | 3 (resent) | 1.2 |" in text
    assert text.endswith("<!-- /faults-table -->\n\nafter\n")


def test_faults_table_says_when_there_is_nothing_to_render(tmp_path: Path) -> None:
    result = table("--from", str(tmp_path))
    assert result.returncode == 1
    assert "make test-faults" in result.stderr


@pytest.mark.slow
def test_soak_script_runs_briefly(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    if not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("/usr/sbin/mosquitto is not installed")
    png = tmp_path / "soak.png"
    result = subprocess.run(
        [
            *(sys.executable, str(ROOT / "benchmarks/soak/soak.py"), "--png", str(png)),
            *("--duration", "12", "--warmup", "4", "--interval", "2", "--rate", "200"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert png.exists(), result.stdout + result.stderr
    summary = json.loads(png.with_suffix(".json").read_text())
    assert summary["stored_per_s_mean"] > 0
    assert png.with_suffix(".csv").read_text().startswith("t_s,rss_mb")
