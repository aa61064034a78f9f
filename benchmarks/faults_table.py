"""Render the fault tests' last results as docs/reliability.md's table.

Each fault test (tests/faults/) leaves one JSON row in `.faults/` (or
$WIREWAY_FAULTS_REPORT). This prints them as a Markdown table; with `--write FILE` it
replaces the table between the `<!-- faults-table -->` and `<!-- /faults-table -->`
markers of FILE instead.

    make test-faults
    .venv/bin/python benchmarks/faults_table.py --write docs/reliability.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- faults-table -->", "<!-- /faults-table -->"
COLUMNS = ("fault", "acknowledged", "delivered", "lost", "duplicates", "recovery (s)")


def load(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            rows.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            print(f"{path}: skipped ({exc})", file=sys.stderr)
    return rows


def cell(row: dict[str, Any], column: str) -> str:
    if column == "recovery (s)":
        value = row.get("recovery_s")
        return "-" if value is None else f"{value:.1f}"
    value = row.get(column, "")
    if column == "duplicates" and value and row.get("duplicates_note"):
        return f"{value} ({row['duplicates_note']})"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "| --- | " + " | ".join("---:" for _ in COLUMNS[1:]) + " |",
    ]
    for row in sorted(rows, key=lambda r: str(r.get("test", ""))):
        lines.append("| " + " | ".join(cell(row, c) for c in COLUMNS) + " |")
    last = max((str(r.get("finished_at", "")) for r in rows), default="")
    lines += ["", f"Last run finished {last} (`make test-faults`; rows from `.faults/*.json`)."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace the table between the markers of this file")
    parser.add_argument("--from", dest="folder", type=Path, default=None, help="folder of JSON rows")
    args = parser.parse_args()
    folder = args.folder or Path(os.environ.get("WIREWAY_FAULTS_REPORT", ROOT / ".faults"))
    rows = load(folder)
    if not rows:
        print(f"no fault results in {folder}: run `make test-faults` first", file=sys.stderr)
        return 1
    text = table(rows)
    if args.write is None:
        print(text)
        return 0
    doc = args.write.read_text()
    if START not in doc or END not in doc:
        print(f"{args.write}: no {START} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = doc.split(START, 1)
    tail = rest.split(END, 1)[1]
    args.write.write_text(f"{head}{START}\n{text}\n{END}{tail}")
    print(f"{args.write}: table of {len(rows)} faults written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
