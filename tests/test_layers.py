"""The import contracts in pyproject.toml hold, and they catch an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGE = ROOT / "src" / "wireway"


def contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_contracts_hold() -> None:
    """`lint-imports` (as `make lint` runs it) keeps every contract of pyproject.toml."""
    result = lint_imports(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_breaks_the_layers_contract(tmp_path: Path) -> None:
    """A copy of the package where a connector imports the application: the layers
    contract names that import and lint-imports exits non-zero."""
    copy = tmp_path / "src" / "wireway"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    output = copy / "connectors" / "file" / "output.py"
    output.write_text(output.read_text() + "\nfrom wireway.apps import builtin_path  # noqa: E402, F401\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = lint_imports(tmp_path, tmp_path / "src")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "wireway.connectors is not allowed to import wireway.apps" in result.stdout
    assert "wireway.connectors.file.output -> wireway.apps" in result.stdout


def test_every_connector_family_and_processor_is_in_its_independence_contract() -> None:
    """A new connector folder or processor module joins the independence contracts."""
    families = {
        f"wireway.connectors.{p.name}"
        for p in (PACKAGE / "connectors").iterdir()
        if (p / "__init__.py").is_file()
    }
    assert set(contracts()["connector-families"]["modules"]) == families
    processors = {
        f"wireway.processors.{p.stem}"
        for p in (PACKAGE / "processors").glob("*.py")
        # state.py, positions.py (the engine's board of last fixes), devices_view.py (of
        # latest devices): helpers, not steps
        if p.stem not in ("__init__", "base", "state", "positions", "devices_view")
    }
    assert set(contracts()["processors"]["modules"]) == processors
