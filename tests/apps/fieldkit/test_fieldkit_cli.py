"""`--app fieldkit` on the command line: check, init, simulate, run."""

from __future__ import annotations

import tomllib
from pathlib import Path

from conftest import ROOT, wireway
from wireway.apps import builtin_path
from wireway.formats.wiglecsv_format import WigleCodec


def test_the_pattern_passes_check() -> None:
    result = wireway("check", str(builtin_path("fieldkit")))
    assert result.returncode == 0, result.stderr
    assert "pattern fieldkit" in result.stdout
    assert "steps [fieldkit_filter, gps, track]" in result.stdout
    assert "outputs [tak, fieldkit_server]" in result.stdout
    server_on = wireway("check", str(builtin_path("fieldkit")), env={"FIELDKIT_TAK_ENABLED": "true"})
    assert "outputs [tak, fieldkit_server, tak]" in server_on.stdout


def test_init_copies_the_field_kit_and_run_refuses_an_unknown_app(tmp_path: Path) -> None:
    result = wireway("init", str(tmp_path / "kit"), "--app", "fieldkit")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "kit" / "fieldkit.yaml").read_text() == (
        builtin_path("fieldkit") / "fieldkit.yaml"
    ).read_text()
    assert wireway("check", str(tmp_path / "kit")).returncode == 0
    bad = wireway("run", "--app", "radar", "--data-dir", str(tmp_path / "data"))
    assert bad.returncode == 2
    assert "unknown application 'radar'" in bad.stderr


def test_simulate_writes_a_new_kismet_file_per_run(tmp_path: Path) -> None:
    for layout in ("1.4", "1.6"):
        args = ["simulate", "--app", "fieldkit", "--wigle-dir", str(tmp_path), "--layout", layout]
        result = wireway(*args, "--devices", "12", "--total", "40", "--rate", "0")
        assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("Kismet-*.wiglecsv"))
    assert len(files) == 2
    for path in files:
        codec = WigleCodec()
        rows = [codec.decode_line(line) for line in path.read_bytes().splitlines()]
        values = [r.value for r in rows if r is not None]
        assert all(r.error is None for r in rows if r is not None)
        assert len(values) == 40
        ssids = {v["ssid"] for v in values}
        assert {"Cafe, Guest", "Tom & Jerry", "<script>alert(1)</script>", 'Say "hi"', "Café Ñandú"} & ssids
        assert all(v["frequency_mhz"] in (2412, 2437, 2462, 5180, 5745, None) for v in values)


def test_the_operator_page_ships_in_the_package() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "**/*.html" in data["wireway"]
