"""`wireway bench`: the benchmarks of src/wireway/bench/, on loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from wireway.cli.common import err_console


def bench(
    what: Annotated[str, typer.Argument(help="tcp, sensor, nats, file or fieldkit.")] = "tcp",
    messages: Annotated[int, typer.Option(help="Messages (readings) per full-speed run.")] = 200_000,
    rate: Annotated[int | None, typer.Option(help="Offered rate for the latency run.")] = None,
    latency_seconds: Annotated[float, typer.Option(help="Length of the latency run.")] = 10.0,
    buffer: Annotated[str, typer.Option(help="tcp: durable, memory or both.")] = "both",
    devices: Annotated[int, typer.Option(help="sensor: simulated devices.")] = 100,
    postgres: Annotated[
        str, typer.Option(help="sensor: PostgreSQL to store into (a temporary schema).")
    ] = "postgresql://postgres@127.0.0.1:5432/test",
    http_readings: Annotated[int, typer.Option(help="sensor: readings for the HTTP runs.")] = 40_000,
    nats_url: Annotated[
        str, typer.Option(help="nats: the NATS server (JetStream on).")
    ] = "nats://127.0.0.1:4222",
    nats_batch: Annotated[int, typer.Option(help="nats: messages fetched and published at once.")] = 1000,
    tracked: Annotated[
        int, typer.Option(help="fieldkit: devices tracked at once for the memory run.")
    ] = 50_000,
    wigletotak: Annotated[
        str | None,
        typer.Option(help="fieldkit: a clone of WigleToTAK to run beside it.", envvar="WIGLETOTAK_SRC"),
    ] = None,
) -> None:
    """Benchmark on loopback: msg/s, p50/p99 latency, CPU and peak RSS.

    `tcp`: tcp -> buffer -> file. `sensor`: the built-in application, MQTT QoS 1 ->
    durable buffer -> PostgreSQL, then HTTP single and batched POSTs.
    `nats`: JetStream -> durable buffer -> JetStream on a NATS server (--nats-url).
    `file`: a file appended at full speed -> file tail -> buffer -> file (and udp
    multicast on loopback), --messages lines, then half that rate for --latency-seconds.
    `fieldkit`: `wireway run --app fieldkit` fed a growing WiGLE CSV file: --messages
    rows at full speed, --tracked devices with the refresh timer (peak RSS), --rate
    rows/s for --latency-seconds; WigleToTAK beside it with --wigletotak.

    Example: wireway bench sensor --messages 100000 --rate 1000
    """
    runs: dict[str, Callable[[], None]] = {
        "tcp": lambda: _tcp(messages, rate or 5000, latency_seconds, buffer),
        "sensor": lambda: _sensor(messages, rate or 1000, latency_seconds, devices, postgres, http_readings),
        "nats": lambda: _nats(nats_url, messages, rate, latency_seconds, nats_batch),
        "file": lambda: _file(messages, latency_seconds, buffer),
        "fieldkit": lambda: _fieldkit(messages, rate or 1000, latency_seconds, tracked, wigletotak),
    }
    run = runs.get(what)
    if run is None:
        raise typer.BadParameter(f"expected one of: {', '.join(runs)}")
    try:
        run()
    except (RuntimeError, OSError) as exc:  # a server down, an instance that did not start
        err_console.print(f"bench failed: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None


# each bench's modules are imported only when it runs (some need servers' client libraries)
def _tcp(messages: int, rate: int, latency_seconds: float, buffer: str) -> None:
    from wireway.bench.tcp import run_bench

    run_bench(messages=messages, rate=rate, latency_seconds=latency_seconds, buffer=buffer)


def _sensor(
    readings: int, rate: int, latency_seconds: float, devices: int, dsn: str, http_readings: int
) -> None:
    from wireway.bench.sensor import run_sensor_bench

    run_sensor_bench(
        readings=readings,
        rate=rate,
        latency_seconds=latency_seconds,
        devices=devices,
        dsn=dsn,
        http_readings=http_readings,
    )


def _nats(url: str, messages: int, rate: int | None, latency_seconds: float, batch: int) -> None:
    from wireway.bench.nats import run_nats_bench

    run_nats_bench(url=url, messages=messages, rate=rate, latency_seconds=latency_seconds, batch=batch)


def _file(lines: int, latency_seconds: float, buffer: str) -> None:
    from wireway.bench.file import run_file_bench

    run_file_bench(lines=lines, latency_seconds=latency_seconds, buffer=buffer)


def _fieldkit(rows: int, rate: int, latency_seconds: float, tracked: int, source: str | None) -> None:
    from wireway.bench.fieldkit import run_fieldkit_bench

    run_fieldkit_bench(rows=rows, rate=rate, latency_seconds=latency_seconds, tracked=tracked, source=source)
