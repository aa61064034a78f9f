"""The scripts in benchmarks/ still run (tiny inputs; their figures are not checked)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need_service

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
