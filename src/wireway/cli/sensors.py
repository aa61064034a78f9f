"""Sensor application commands: keys, simulate, init."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wireway.apps import builtin_path
from wireway.cli.common import DataDir, console, err_console
from wireway.errors import WirewayError

keys_app = typer.Typer(
    help="Device API keys of the sensor application (stored hashed in its database).\n\n"
    "Example: wireway keys create --device esp32-001",
    no_args_is_help=True,
)

Storage = Annotated[
    str | None,
    typer.Option("--storage", envvar="WIREWAY_STORAGE", help="sqlite:///path or postgresql://..."),
]


_SPAN = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def expiry(text: str, now: datetime | None = None) -> datetime:
    """`--expires`: a span from now (`30d`, `12h`, `90m`) or an RFC 3339 time with its zone."""
    now = now or datetime.now(UTC)
    span = _SPAN.match(text.strip())
    if span:
        return now + timedelta(seconds=int(span.group(1)) * _UNITS[span.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r}: a span such as 30d, 12h, 90m, or an RFC 3339 time") from None
    if when.tzinfo is None:
        raise typer.BadParameter(f"{text!r}: give the time zone (Z or +01:00)")
    if when <= now:
        raise typer.BadParameter(f"{text!r} is in the past")
    return when.astimezone(UTC)


async def _with_keys(
    storage: str | None, data_dir: Path, action: str, arg: str | None, expires: datetime | None = None
) -> object:
    from wireway.apps.sensor_ingest.auth import Keys
    from wireway.apps.sensor_ingest.migrations import migrate
    from wireway.config.model import Security
    from wireway.connectors.sql.db import open_database

    # the built-in pattern's `schema: ${WIREWAY_SCHEMA:-wireway}`: the keys the app reads
    schema = os.environ.get("WIREWAY_SCHEMA") or "wireway"
    # no --storage: the built-in application's default, <data-dir>/wireway.db
    db = open_database(storage or "", data_dir=data_dir, own_schema=schema)
    await db.open()
    try:
        await migrate(db)
        keys = Keys(db, Security(authentication="api_key"))
        if action == "create":
            return await keys.create(arg, expires_at=expires)
        if action == "revoke":
            return await keys.revoke(arg or "")
        return await keys.list()
    finally:
        await db.close()


def _run(
    storage: str | None, data_dir: Path, action: str, arg: str | None = None, expires: datetime | None = None
) -> object:
    try:
        return asyncio.run(_with_keys(storage, data_dir, action, arg, expires))
    except (WirewayError, OSError) as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None


@keys_app.command("create")
def keys_create(
    device: Annotated[str, typer.Option("--device", help="The device this key may post for.")],
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires", help="When the key stops working: a span (30d, 12h, 90m) or an RFC 3339 time."
        ),
    ] = None,
    storage: Storage = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Create a device key; it is printed once and only its hash is kept.

    Example: wireway keys create --device esp32-001 --expires 90d
    """
    until = expiry(expires) if expires else None
    created = _run(storage, data_dir, "create", device, until)
    assert isinstance(created, tuple)
    key_id, key = created
    console.print(f"key id: {key_id}\ndevice: {device}\nkey:    {key}", markup=False)
    if until is not None:
        console.print(f"expires: {until.isoformat()}", markup=False)
    console.print("Store the key now: it cannot be shown again.", style="yellow")


@keys_app.command("list")
def keys_list(storage: Storage = None, data_dir: DataDir = Path("data")) -> None:
    """List keys (ids, roles, devices; never the keys themselves).

    Example: wireway keys list --storage postgresql://postgres@127.0.0.1/test
    """
    rows = _run(storage, data_dir, "list")
    table = Table(title="API keys")
    for col in ("key id", "role", "device", "created", "revoked", "expires"):
        table.add_column(col)
    for r in rows:  # type: ignore[attr-defined]
        table.add_row(
            r["key_id"],
            r["role"],
            r["device_id"] or "",
            str(r["created_at"]),
            str(r["revoked_at"] or ""),
            str(r["expires_at"] or ""),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, storage: Storage = None, data_dir: DataDir = Path("data")) -> None:
    """Revoke a key; a running instance refuses it within 5 s.

    Example: wireway keys revoke 3f9a1c2e
    """
    if not _run(storage, data_dir, "revoke", key_id):
        err_console.print(f"no active key {key_id}")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


def init(folder: Path) -> None:
    """Copy the built-in application's pattern files into FOLDER for editing."""
    folder.mkdir(parents=True, exist_ok=True)
    for src in sorted(builtin_path().glob("*.yaml")):
        dest = folder / src.name
        if dest.exists():
            err_console.print(f"{dest} exists, left as is")
            continue
        shutil.copyfile(src, dest)
        console.print(f"wrote {dest}", markup=False)
    console.print(f"run it with: wireway run {folder}", markup=False)


def simulate(
    devices: int,
    rate: float,
    duration: float,
    via: str,
    url: str,
    mqtt: str,
    api_key: str | None,
    anomalies: float,
    malformed: float,
    total: int | None,
    prefix: str = "neurobuild",
) -> None:
    """Send simulated readings with a progress bar and print a summary."""
    from wireway.apps.sensor_ingest.simulate import Simulator, post_http, publish_mqtt
    from wireway.observability import logging as log

    log.setup("WARNING")  # the MQTT session's warnings on stderr, not its info lines in the table
    sim = Simulator(devices=devices, anomalies=anomalies, malformed=malformed)
    n = total if total is not None else int(rate * duration)
    with Progress(
        TextColumn(f"{via} -> {url if via == 'http' else mqtt}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("send", total=n)

        def advance(k: int) -> None:
            progress.advance(task, k)

        if via == "http":
            results = asyncio.run(
                post_http(
                    sim,
                    url=url,
                    rate=rate,
                    duration=duration,
                    api_key=api_key,
                    total=total,
                    progress=advance,
                )
            )
        else:
            try:
                results = publish_mqtt(
                    sim, url=mqtt, rate=rate, duration=duration, prefix=prefix, total=total, progress=advance
                )
            except (ConnectionError, OSError) as exc:
                progress.stop()
                err_console.print(f"error: {exc}", markup=False)
                raise typer.Exit(1) from None
    table = Table(title=f"simulated {sum(sim.made.values())} readings from {devices} devices")
    table.add_column("what")
    table.add_column("count", justify="right")
    for k, v in sorted(sim.made.items()):
        table.add_row(f"made: {k}", str(v))
    for k, v in sorted(results.items()):
        table.add_row(f"answer: {k}", str(v))
    console.print(table)
