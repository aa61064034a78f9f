"""Shared CLI helpers: finding the patterns to run, printing config errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from wireway.apps import builtin_path
from wireway.config import Pattern, load_deployment
from wireway.connectors.hostport import parse_hostport

# the --data-dir option every command that touches the buffer or DLQ shares
DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="WIREWAY_DATA_DIR", help="Buffer and DLQ folder.")
]

console = Console()
# errors keep their lines whole (a path or a message is not cut at the terminal width:
# a reader, or a script looking for it, sees it on one line)
err_console = Console(stderr=True, soft_wrap=True)

# the built-in applications `--app` names, and their package folders
APPS = {"sensors": "sensor_ingest", "fieldkit": "fieldkit"}


def app_path(name: str) -> Path:
    """The pattern folder of the built-in application `name` (a bad name is a usage error)."""
    if name not in APPS:
        raise typer.BadParameter(f"unknown application {name!r} (known: {', '.join(APPS)})")
    return builtin_path(APPS[name])


def copy_patterns(source: Path, folder: Path) -> None:
    """Copy an application's pattern files into FOLDER, leaving files already there alone."""
    folder.mkdir(parents=True, exist_ok=True)
    for src in sorted(source.glob("*.yaml")):
        dest = folder / src.name
        if dest.exists():
            err_console.print(f"{dest} exists, left as is")
            continue
        shutil.copyfile(src, dest)
        console.print(f"wrote {dest}", markup=False)
    console.print(f"run it with: wireway run {folder}", markup=False)


def default_target() -> Path:
    """$WIREWAY_CONFIG, ./wireway.yaml, ./patterns/, else the built-in application."""
    env = os.environ.get("WIREWAY_CONFIG")
    if env:
        return Path(env)
    for candidate in (Path("wireway.yaml"), Path("patterns")):
        if candidate.exists():
            return candidate
    return builtin_path()


def load_or_exit(path: Path, variables: dict[str, str] | None = None) -> list[Pattern]:
    """Load a deployment; print every error as file:line key.path: message and exit 1."""
    patterns, errors = load_deployment(path, variables)
    if errors:
        for err in errors:
            err_console.print(str(err), markup=False, highlight=False, soft_wrap=True)
        err_console.print(f"{len(errors)} error(s)", style="red")
        raise typer.Exit(1)
    return patterns


def hostport_option(value: str) -> tuple[str, int]:
    try:
        return parse_hostport(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: expected HOST:PORT") from None
