"""The field kit on the command line: `init --app fieldkit` copies its whole chain,
`run --app fieldkit --simulate` runs it with stand-ins for missing programs."""

from __future__ import annotations

import shutil
from pathlib import Path

from wireway.cli.common import console, err_console


def bare_simulate(argv: list[str]) -> list[str]:
    """`run ... --simulate` with no number after it means the default (100 sensors, or
    the field kit's stand-ins), as click options cannot take an optional value."""
    if "run" not in argv:
        return argv
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        following = argv[i + 1] if i + 1 < len(argv) else ""
        if arg == "--simulate" and not following.isdigit():
            out.append("100")
    return out


def init_chain(folder: Path) -> None:
    """Copy the field kit's patterns, control API and services into FOLDER."""
    from wireway.apps.fieldkit.standins.chain import chain_files

    folder.mkdir(parents=True, exist_ok=True)
    for src in chain_files():
        dest = folder / src.name
        if dest.exists():
            err_console.print(f"{dest} exists, left as is", markup=False)
            continue
        shutil.copyfile(src, dest)
        console.print(f"wrote {dest}", markup=False)
    console.print(f"run it with: wireway run {folder}", markup=False)


def simulation(data_dir: Path, variables: dict[str, str]) -> Path:
    """The folder to run for `--app fieldkit --simulate` (its variables added)."""
    from wireway.apps.fieldkit.standins.chain import prepare

    sim = prepare(data_dir, variables)
    variables.update(sim.variables)
    lines = "\n".join(f"  {note}" for note in sim.notes)
    console.print(
        f"wireway: the field kit's chain from {sim.folder}, simulated:\n{lines}", markup=False, soft_wrap=True
    )
    return sim.folder
