"""wireway's command line: run, check, dlq, status, bench."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from wireway import __version__
from wireway.cli.common import console, default_target, err_console, hostport_option, load_or_exit
from wireway.cli.dlq import app as dlq_app
from wireway.errors import WirewayError

app = typer.Typer(
    help="wireway runs integration patterns: YAML pipelines from inputs to outputs.\n\n"
    "Example: wireway run patterns/",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(dlq_app, name="dlq")

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="WIREWAY_DATA_DIR", help="Buffer and DLQ folder.")
]
Http = Annotated[
    str, typer.Option("--http", envvar="WIREWAY_HTTP", help="HOST:PORT of the HTTP server.")
]


@app.command()
def run(
    path: Annotated[
        Path | None, typer.Argument(help="A pattern file or a folder of *.yaml files.")
    ] = None,
    data_dir: DataDir = Path("data"),
    http: Http = "127.0.0.1:8080",
    log_format: Annotated[str, typer.Option("--log-format", help="console or json.")] = "console",
    log_level: Annotated[
        str | None, typer.Option("--log-level", envvar="WIREWAY_LOG_LEVEL", help="DEBUG, INFO...")
    ] = None,
) -> None:
    """Run patterns until SIGTERM or Ctrl-C.

    With no PATH: $WIREWAY_CONFIG, else ./wireway.yaml or ./patterns/, else the
    built-in application.

    Example: wireway run patterns/ --http 0.0.0.0:8080 --data-dir /var/lib/wireway
    """
    from wireway.observability import logging as log
    from wireway.runtime.engine import serve

    log.setup(log_level, log_format)
    os.environ.setdefault("WIREWAY_DATA_DIR", str(data_dir))
    target = path or default_target()
    patterns = load_or_exit(target)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as loop_runner:
            loop_runner.run(serve(patterns, data_dir=data_dir, http=hostport_option(http)))
    except WirewayError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None
    return uvloop.new_event_loop


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="A pattern file or a folder of *.yaml files.")],
) -> None:
    """Validate pattern files without running them.

    Prints every error as `file:line key.path: message` and exits 1, or one
    summary line per pattern and exits 0.

    Example: wireway check patterns/
    """
    patterns = load_or_exit(path)
    for p in patterns:
        ins = ", ".join(i.type for i in p.inputs)
        outs = ", ".join(o.type for o in p.outputs)
        steps = ", ".join(s.kind for s in p.steps) or "none"
        console.print(
            f"ok {p.file}: pattern {p.name} ({p.info.type}) inputs [{ins}] -> "
            f"steps [{steps}] -> outputs [{outs}]",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def status(http: Http = "127.0.0.1:8080") -> None:
    """Show a running instance's patterns and connectors as a table.

    Example: wireway status --http 127.0.0.1:8080
    """
    from wireway.cli.status import show_status

    show_status(http)


@app.command()
def bench(
    messages: Annotated[int, typer.Option(help="Messages per run.")] = 200_000,
    rate: Annotated[int, typer.Option(help="Offered rate for the latency run (msg/s).")] = 5000,
    latency_seconds: Annotated[float, typer.Option(help="Length of the latency run.")] = 10.0,
    buffer: Annotated[str, typer.Option(help="durable, memory or both.")] = "both",
) -> None:
    """Benchmark tcp -> buffer -> file on loopback: msg/s, p50/p99 latency, peak RSS.

    Example: wireway bench --messages 200000 --rate 5000
    """
    from wireway.cli.bench import run_bench

    run_bench(messages=messages, rate=rate, latency_seconds=latency_seconds, buffer=buffer)


@app.command()
def docs(
    folder: Annotated[Path, typer.Argument(help="Where to write the pages.")] = Path(
        "docs/reference"
    ),
) -> None:
    """Generate one reference page per connector and processor from its options.

    Example: wireway docs docs/reference
    """
    from wireway.docgen import generate

    for path in generate(folder):
        console.print(f"wrote {path}", markup=False)


@app.command()
def version() -> None:
    """Print wireway's version.

    Example: wireway version
    """
    console.print(__version__)


def main() -> None:
    """Console-script entry point."""
    app()
