"""`wireway dlq`: inspect, redrive and purge the dead-letter queue."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from wireway.cli.common import DataDir, console, err_console
from wireway.errors import WirewayError

if TYPE_CHECKING:
    from wireway.runtime.dlq import DlqAdmin

app = typer.Typer(
    help="The dead-letter queue under --data-dir (works while an instance runs).\n\n"
    "Example: wireway dlq list --pattern orders",
    no_args_is_help=True,
)

PatternOpt = Annotated[str | None, typer.Option("--pattern", help="Only this pattern.")]


def _admin(data_dir: Path) -> DlqAdmin:
    """The DLQ admin on the data dir's buffer file, or exit 1 with the reason."""
    from wireway.runtime.buffer_file import buffer_path
    from wireway.runtime.dlq import DlqAdmin

    try:
        return DlqAdmin(buffer_path(data_dir))
    except WirewayError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


@app.command("list")
def list_(
    data_dir: DataDir = Path("data"),
    pattern: PatternOpt = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 100,
) -> None:
    """List dead letters, newest first.

    Example: wireway dlq list --pattern orders --limit 20
    """
    rows = _admin(data_dir).list(pattern, limit)
    table = Table(title=f"dead letters in {data_dir}")
    for col in ("message id", "pattern", "output", "attempts", "failed at", "reason"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(
            row["message_id"],
            row["pattern"],
            row["queue"] or "(ingest)",
            str(row["attempts"]),
            _when(row["failed_at"]),
            row["reason"],
        )
    console.print(table)
    console.print(f"{len(rows)} shown")


@app.command()
def show(message_id: str, data_dir: DataDir = Path("data")) -> None:
    """Show one dead letter with its whole envelope.

    Example: wireway dlq show 01JD0Q3Z8K4N5V6W7X8Y9Z0ABC
    """
    row = _admin(data_dir).show(message_id)
    if row is None:
        err_console.print(f"no dead letter with message id {message_id}")
        raise typer.Exit(1)
    console.print_json(json.dumps(row, default=str))


@app.command()
def redrive(
    data_dir: DataDir = Path("data"),
    pattern: PatternOpt = None,
    message_id: Annotated[str | None, typer.Option("--message-id", help="Only this one.")] = None,
) -> None:
    """Send dead letters back for delivery (a running instance picks them up within 1 s).

    Example: wireway dlq redrive --pattern orders
    """
    n = _admin(data_dir).redrive(pattern=pattern, message_id=message_id)
    console.print(f"{n} message(s) queued for redelivery")


@app.command()
def purge(
    data_dir: DataDir = Path("data"),
    pattern: PatternOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete dead letters for good.

    Example: wireway dlq purge --pattern orders --yes
    """
    if not yes and not typer.confirm(f"Delete dead letters{' of ' + pattern if pattern else ''}?"):
        raise typer.Exit(1)
    n = _admin(data_dir).purge(pattern)
    console.print(f"{n} message(s) purged")
