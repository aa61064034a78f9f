"""wireway's command line: run, check, dlq, status, bench."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from wireway import __version__
from wireway.apps import builtin_path
from wireway.cli.bench import bench
from wireway.cli.common import (
    DataDir,
    app_path,
    console,
    copy_patterns,
    default_target,
    err_console,
    hostport_option,
    load_or_exit,
)
from wireway.cli.dlq import app as dlq_app
from wireway.cli.sensors import keys_app
from wireway.cli.services import app as services_app
from wireway.errors import WirewayError

app = typer.Typer(
    help="wireway runs integration patterns: YAML pipelines from inputs to outputs.\n\n"
    "Example: wireway run patterns/",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(dlq_app, name="dlq")
app.add_typer(keys_app, name="keys")
app.add_typer(services_app, name="services")
app.command()(bench)

Http = Annotated[str, typer.Option("--http", envvar="WIREWAY_HTTP", help="HOST:PORT of the HTTP server.")]


@app.command()
def run(
    path: Annotated[Path | None, typer.Argument(help="A pattern file or a folder of *.yaml files.")] = None,
    app_name: Annotated[
        str | None,
        typer.Option("--app", envvar="WIREWAY_APP", help="A built-in application: sensors or fieldkit."),
    ] = None,
    data_dir: DataDir = Path("data"),
    http: Http = "127.0.0.1:8080",
    storage: Annotated[
        str | None,
        typer.Option("--storage", envvar="WIREWAY_STORAGE", help="sqlite:///path or postgresql://..."),
    ] = None,
    mqtt: Annotated[
        str | None,
        typer.Option("--mqtt", envvar="WIREWAY_MQTT_URL", help="MQTT broker URL (built-in app)."),
    ] = None,
    no_mqtt: Annotated[bool, typer.Option("--no-mqtt", help="Turn the MQTT input off.")] = False,
    simulate: Annotated[
        int,
        typer.Option(
            "--simulate",
            help="Also post readings from N simulated devices (the demo `make run` starts: "
            "without --mqtt, the built-in app's MQTT input is on only if a broker answers "
            "at 127.0.0.1:1883). With --app fieldkit: its whole chain (gpsd, the MAVLink "
            "bridge, Kismet, WigleToTAK, the control API), stand-ins for missing programs.",
        ),
    ] = 0,
    log_format: Annotated[str, typer.Option("--log-format", help="console or json.")] = "console",
    log_level: Annotated[
        str | None, typer.Option("--log-level", envvar="WIREWAY_LOG_LEVEL", help="DEBUG, INFO...")
    ] = None,
) -> None:
    """Run patterns until SIGTERM or Ctrl-C.

    With no PATH: $WIREWAY_CONFIG, else ./wireway.yaml or ./patterns/, else the
    built-in sensor-ingestion application. Its MQTT input stays on while the broker
    is down: it reconnects with backoff, /health says `degraded` (mqtt: down) and
    HTTP ingestion carries on (--no-mqtt turns it off).

    Example: wireway run patterns/ --http 0.0.0.0:8080 --data-dir /var/lib/wireway
    """
    from wireway.observability import logging as log
    from wireway.runtime.serve import serve

    log.setup(log_level, log_format)
    # what the options say, for `${VAR}` in the pattern files (the process environment
    # itself is left as it is)
    variables = {**os.environ, "WIREWAY_DATA_DIR": str(data_dir)}
    if storage:
        variables["WIREWAY_STORAGE"] = storage
    if mqtt:
        variables["WIREWAY_MQTT_URL"] = mqtt
    target = path or (app_path(app_name) if app_name else default_target())
    if simulate and app_name == "fieldkit" and path is None:  # its chain, stand-ins for what is missing
        from wireway.cli.fieldkit import simulation

        target, simulate = simulation(data_dir, variables), 0
    elif simulate and app_name not in (None, "sensors"):
        raise typer.BadParameter(
            "--simulate posts sensor readings; for the field kit run `wireway simulate --app fieldkit`"
        )
    if no_mqtt:
        variables["WIREWAY_MQTT_ENABLED"] = "false"
    elif demo_without_broker(target, mqtt, simulate):
        console.print(
            "wireway: no MQTT broker answers at 127.0.0.1:1883, so the demo runs without "
            "the MQTT input (start one and restart, or pass --mqtt URL)",
            markup=False,
        )
        variables["WIREWAY_MQTT_ENABLED"] = "false"
    patterns = load_or_exit(target, variables)
    address = hostport_option(http)
    alongside = None
    if simulate:  # the sensor application's demo devices, posting to this very process
        from wireway.apps.sensor_ingest.demo import run_demo

        alongside = functools.partial(run_demo, devices=simulate)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as loop_runner:
            loop_runner.run(serve(patterns, data_dir=data_dir, http=address, alongside=alongside))
    except WirewayError as exc:
        err_console.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None


def demo_without_broker(target: Path, mqtt: str | None, simulate: int) -> bool:
    """The demo (`--simulate`, what `make run` starts) of the built-in application with
    no broker URL given and none answering on the default address: run it without MQTT.

    Anything else keeps the MQTT input on, whether the broker is up or not: the input
    reconnects with backoff and /health reports `mqtt: down` meanwhile.
    """
    return bool(simulate) and target == builtin_path() and not mqtt and not broker_answers()


def broker_answers(host: str = "127.0.0.1", port: int = 1883) -> bool:
    import socket

    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Where to copy the pattern files.")] = Path("patterns"),
    app_name: Annotated[str, typer.Option("--app", help="sensors or fieldkit.")] = "sensors",
) -> None:
    """Copy a built-in application's pattern files out, to edit and run.

    Example: wireway init patterns && wireway run patterns
    Example: wireway init kit --app fieldkit && wireway run kit
    """
    if app_name == "fieldkit":  # its patterns, control API and services
        from wireway.cli.fieldkit import init_chain

        init_chain(folder)
        return
    if app_name != "sensors":
        copy_patterns(app_path(app_name), folder)
        return
    from wireway.cli.sensors import init as do_init

    do_init(folder)


@app.command()
def simulate(
    devices: Annotated[int, typer.Option(help="Simulated devices.")] = 100,
    rate: Annotated[float, typer.Option(help="Readings per second, all devices together.")] = 100,
    duration: Annotated[float, typer.Option(help="Seconds to run.")] = 60,
    via: Annotated[str, typer.Option(help="http or mqtt.")] = "http",
    url: Annotated[str, typer.Option(help="wireway's HTTP address.")] = "http://127.0.0.1:8080",
    mqtt: Annotated[str, typer.Option("--mqtt", help="Broker URL.")] = "mqtt://127.0.0.1:1883",
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="WIREWAY_API_KEY", help="Key for HTTP.")
    ] = None,
    anomalies: Annotated[float, typer.Option(help="Fraction of gas spikes.")] = 0.02,
    malformed: Annotated[float, typer.Option(help="Fraction of invalid readings.")] = 0.01,
    total: Annotated[int | None, typer.Option(help="Stop after this many readings.")] = None,
    prefix: Annotated[
        str,
        typer.Option(envvar="WIREWAY_MQTT_PREFIX", help="mqtt: topic prefix (<prefix>/sensors/<id>/data)."),
    ] = "neurobuild",
    app_name: Annotated[str, typer.Option("--app", help="sensors or fieldkit.")] = "sensors",
    wigle_dir: Annotated[
        Path, typer.Option("--wigle-dir", envvar="FIELDKIT_WIGLE_DIR", help="fieldkit: where to write.")
    ] = Path("kismet"),
    layout: Annotated[str, typer.Option(help="fieldkit: WiGLE CSV layout, 1.4 or 1.6.")] = "1.6",
    gpsd_port: Annotated[
        int, typer.Option("--gpsd-port", help="fieldkit: run gpsd on this port, fed a simulated walk.")
    ] = 0,
) -> None:
    """Send realistic ESP32 readings (moving radar targets, PIR bursts, gas spikes), or
    with `--app fieldkit` write a growing Kismet WiGLE CSV file (a new one per run).

    Example: wireway simulate --devices 100 --rate 1000 --duration 60 --via mqtt
    Example: wireway simulate --app fieldkit --wigle-dir kismet --devices 30 --rate 20
    """
    if app_name == "fieldkit":
        from wireway.apps.fieldkit.simulate import Simulator

        if layout not in ("1.4", "1.6"):
            raise typer.BadParameter("--layout must be 1.4 or 1.6")
        from wireway.apps.fieldkit.nmea import kit_gps

        rows = total if total is not None else int(rate * duration)
        console.print(f"writing {rows} rows into a new file in {wigle_dir} (Ctrl-C stops)", markup=False)
        with contextlib.suppress(KeyboardInterrupt), contextlib.ExitStack() as stack:
            if gpsd_port:
                console.print(stack.enter_context(kit_gps(gpsd_port)), markup=False)
            path = Simulator(devices, layout).write(wigle_dir, rows, rate)
            console.print(f"wrote {path}", markup=False)
        return
    if via not in ("http", "mqtt"):
        raise typer.BadParameter("--via must be http or mqtt")
    from wireway.cli.sensors import simulate as do_simulate

    do_simulate(devices, rate, duration, via, url, mqtt, api_key, anomalies, malformed, total, prefix)


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
    services = [s for p in patterns for s in p.services]
    if services:
        from wireway.config.services import start_order

        order = ", ".join(s.name for s in start_order(services))
        console.print(f"ok services, in start order: {order}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def status(http: Http = "127.0.0.1:8080") -> None:
    """Show a running instance's patterns and connectors as a table.

    Example: wireway status --http 127.0.0.1:8080
    """
    from wireway.cli.status import show_status

    show_status(http)


@app.command()
def docs(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Where to write the pages (default docs/reference); with --asyncapi, the "
            "pattern files or folders to describe (default: what `wireway run` would run)."
        ),
    ] = None,
    asyncapi: Annotated[
        Path | None,
        typer.Option(
            "--asyncapi",
            help="Write an AsyncAPI 3.0 document of the patterns' MQTT "
            "topics and WebSocket messages to this file instead.",
        ),
    ] = None,
) -> None:
    """Generate one reference page per connector and processor from its options, or
    an AsyncAPI document of patterns (--asyncapi).

    Example: wireway docs docs/reference
    Example: wireway docs --asyncapi asyncapi.json patterns/
    """
    if asyncapi is not None:
        from wireway.apispec.asyncapi import asyncapi_text

        patterns = [p for target in paths or [default_target()] for p in load_or_exit(target)]
        asyncapi.write_text(asyncapi_text(patterns, yaml=asyncapi.suffix in (".yaml", ".yml")))
        console.print(f"wrote {asyncapi}", markup=False, soft_wrap=True)
        return
    from wireway.docgen import generate

    for path in generate(paths[0] if paths else Path("docs/reference")):
        console.print(f"wrote {path}", markup=False)


@app.command()
def version() -> None:
    """Print wireway's version.

    Example: wireway version
    """
    console.print(__version__)


def main() -> None:
    """Console-script entry point."""
    import sys

    from wireway.cli.fieldkit import bare_simulate

    app(args=bare_simulate(sys.argv[1:]))
