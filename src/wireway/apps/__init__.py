"""Built-in applications: pattern files that ship inside the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def builtin_path(name: str = "sensor_ingest") -> Path:
    """The folder of a built-in application's pattern files."""
    return Path(str(resources.files("wireway") / "apps" / name / "patterns"))
