"""`wireway status`: a running instance's /status as tables."""

from __future__ import annotations

import httpx
import typer
from rich.table import Table

from wireway.cli.common import console, err_console


def show_status(http: str) -> None:
    """Print the /status of the instance at `http` (HOST:PORT or a URL) as one table,
    or exit 1 when nothing answers there."""
    url = f"http://{http}/status" if "://" not in http else f"{http.rstrip('/')}/status"
    try:
        data = httpx.get(url, timeout=5, trust_env=False).json()
    except (httpx.HTTPError, ValueError) as exc:
        err_console.print(f"error: no wireway answers at {url}: {exc}", markup=False)
        raise typer.Exit(1) from None
    table = Table(title=f"wireway at {http} (up {data.get('uptime_seconds', 0)} s)")
    for col in (
        "pattern",
        "component",
        "type",
        "state",
        "in",
        "out",
        "errors",
        "buffer",
        "dlq",
        "breaker",
    ):
        table.add_column(col)
    for p in data.get("patterns", []):
        c = p["counts"]
        table.add_row(
            p["name"],
            "",
            p["type"],
            p["state"],
            str(c["in"]),
            str(c["out"]),
            str(c["error"]),
            str(p["buffer_depth"]),
            str(p["dlq_depth"]),
            "",
        )
        for i in p["inputs"]:
            table.add_row("", f"in: {i['name']}", i["type"], i["state"], "", "", "", "", "", "")
        for o in p["outputs"]:
            table.add_row(
                "",
                f"out: {o['name']}",
                o["type"],
                o["state"],
                "",
                str(o["delivered"]),
                str(o["errors"]),
                str(o["buffer_depth"]),
                "",
                o["breaker"],
            )
    console.print(table)
