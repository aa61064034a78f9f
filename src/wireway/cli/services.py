"""`wireway services`: the services a running wireway supervises, through its HTTP routes."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wireway.cli.common import console, err_console

if TYPE_CHECKING:
    import httpx

app = typer.Typer(
    help="The services (the `services:` sections) of a running wireway: list, start, stop, "
    "restart, logs.\n\nExample: wireway services list --http 127.0.0.1:8080",
    no_args_is_help=True,
)

Http = Annotated[str, typer.Option("--http", envvar="WIREWAY_HTTP", help="HOST:PORT of the running wireway.")]
Name = Annotated[str, typer.Argument(help="The service's name.")]
FOLLOW_EVERY = 0.5  # seconds between reads of a followed log
WAIT = 120.0  # seconds a start, stop or restart may take (stop timeouts, readiness)


def _url(http: str, path: str) -> str:
    base = http.rstrip("/") if "://" in http else f"http://{http}"
    return base + path


def _call(method: str, http: str, path: str, **params: Any) -> httpx.Response:
    import httpx  # loaded by this command only (a run never needs it)

    url = _url(http, path)
    try:
        key = os.environ.get("WIREWAY_ADMIN_KEY", "")  # the services routes need the admin key
        headers = {"X-API-Key": key} if key else {}
        answer = httpx.request(method, url, params=params, headers=headers, timeout=WAIT, trust_env=False)
    except httpx.HTTPError as exc:
        err_console.print(f"error: no wireway answers at {url}: {exc}", markup=False)
        raise typer.Exit(1) from None
    if answer.status_code >= 400:
        try:
            body = answer.json()
            why = f"{body.get('error')}: {body.get('message', '')}"
        except ValueError:
            why = answer.text
        if answer.status_code == 404 and why.startswith("Not found"):
            why = "this wireway runs no services"
        err_console.print(f"error: {why}", markup=False)
        raise typer.Exit(1)
    return answer


def _uptime(started: float | None) -> str:
    if not started:
        return ""
    seconds = int(time.time() - started)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


@app.command("list")
def list_(http: Http = "127.0.0.1:8080") -> None:
    """Every service: state, PID, readiness, restarts, uptime, last exit code."""
    from rich.table import Table

    services = _call("GET", http, "/services").json()["services"]
    table = Table(title=f"services of wireway at {http}")
    for col in ("service", "state", "pid", "ready", "restarts", "uptime", "last exit", "depends on"):
        table.add_column(col)
    for s in services:
        state = s["state"]
        if s.get("next_start_in") is not None:
            state += f" (next start in {s['next_start_in']} s)"
        table.add_row(
            s["name"] + (f" (pattern {s['pattern']})" if s.get("pattern") else ""),
            state,
            str(s["pid"] or ""),
            "yes" if s["ready"] else "no",
            str(s["restarts"]),
            _uptime(s["started_at"]),
            "" if s["last_exit_code"] is None else str(s["last_exit_code"]),
            ", ".join(s["depends_on"]),
        )
    console.print(table)


def _show(body: dict[str, Any]) -> None:
    pid = f" (pid {body['pid']})" if body.get("pid") else ""
    console.print(f"{body['name']}: {body['state']}{pid}", markup=False, highlight=False)


@app.command()
def start(name: Name, http: Http = "127.0.0.1:8080") -> None:
    """Start a service (and what it depends on); waits until it is ready."""
    _show(_call("POST", http, f"/services/{name}/start").json())


@app.command()
def stop(
    name: Name,
    http: Http = "127.0.0.1:8080",
    force: Annotated[bool, typer.Option("--force", help="SIGKILL at once after the stop signal.")] = False,
) -> None:
    """Stop a service, what depends on it first."""
    params = {"force": "true"} if force else {}
    _show(_call("POST", http, f"/services/{name}/stop", **params).json())


@app.command()
def restart(name: Name, http: Http = "127.0.0.1:8080") -> None:
    """Stop a service (dependents first) and start it again, its dependents after it."""
    _show(_call("POST", http, f"/services/{name}/restart").json())


@app.command()
def logs(
    name: Name,
    http: Http = "127.0.0.1:8080",
    lines: Annotated[int, typer.Option("--lines", "-n", help="Last lines to show.")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing what it writes.")] = False,
) -> None:
    """A service's output (its log file under the data directory)."""
    answer = _call("GET", http, f"/services/{name}/logs", lines=lines)
    typer.echo(answer.content.decode("utf-8", "replace"), nl=False)
    offset = int(answer.headers.get("x-log-offset", "0"))
    try:
        while follow:
            time.sleep(FOLLOW_EVERY)
            answer = _call("GET", http, f"/services/{name}/logs", offset=offset)
            typer.echo(answer.content.decode("utf-8", "replace"), nl=False)
            offset = int(answer.headers.get("x-log-offset", str(offset)))
    except KeyboardInterrupt:
        pass
