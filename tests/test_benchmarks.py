"""The scripts in benchmarks/ still run (tiny inputs; their figures are not checked)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need_service, wireway

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.mark.parametrize(
    ("script", "args", "service"),
    [
        ("ingest_hotpath.py", ["--readings", "500", "--rounds", "1"], None),
        ("outbox_gil.py", ["--rows", "8", "--groups", "3"], None),
        ("delivery_hotpath.py", ["--readings", "500", "--rounds", "1", "--pg", PG], "postgresql"),
        ("pg_store.py", ["--readings", "1000", "--path", "copy"], "postgresql"),
        ("pg_store.py", ["--readings", "1000", "--path", "json"], "postgresql"),
        ("hand_script.py", ["--messages", "2000"], "postgresql+mosquitto"),
        ("uvicorn_floor.py", ["--requests", "500"], None),
        ("device_upsert.py", ["--readings", "400", "--batch", "100"], "postgresql"),
        (
            "pg_store.py",
            ["--readings", "500", "--batch", "4", "--drop-index", "idx_sensor_readings_data"],
            "postgresql",
        ),
    ],
)
def test_benchmark_script_runs(script: str, args: list[str], service: str | None) -> None:
    if service is not None:
        need_service("postgresql", 5432)
    if service == "postgresql+mosquitto" and shutil.which("mosquitto") is None:
        need_service("mosquitto (binary)", 1)  # the script starts its own broker
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip(), "it printed no figures"


def test_bench_sensor_reports_every_figure() -> None:
    """`wireway bench sensor` end to end on tiny inputs: every row of its table is there,
    latency to the commit included (the figures themselves are not checked)."""
    need_service("postgresql", 5432)
    if shutil.which("mosquitto") is None:
        need_service("mosquitto (binary)", 1)  # the bench starts its own broker
    out = wireway(
        *("bench", "sensor", "--messages", "400", "--rate", "200"),
        *("--latency-seconds", "1", "--http-readings", "200"),
        cwd=ROOT,
        env={"COLUMNS": "200"},
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for row in (
        "readings/s sustained",
        "p50 publish -> commit at 200/s",
        "p99 publish -> commit at 200/s",
        "publish -> row written",
        "CPU ms per 1,000 readings at 200/s (wireway)",
        "HTTP single-reading POSTs/s",
        "HTTP readings/s in batches of 100",
        "peak RSS MB",
    ):
        line = next((x for x in out.stdout.splitlines() if row in x), None)
        assert line is not None, (row, out.stdout)
        assert any(ch.isdigit() for ch in line.split(row)[1]), line


def test_bench_sensor_without_its_database_fails_plainly() -> None:
    """A PostgreSQL that is not there: one line naming it, exit code 1, no traceback."""
    out = wireway("bench", "sensor", "--postgres", "postgresql://postgres@127.0.0.1:1/test", cwd=ROOT)
    assert out.returncode == 1
    assert "bench failed: cannot use PostgreSQL at postgresql://postgres@127.0.0.1:1/test" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
