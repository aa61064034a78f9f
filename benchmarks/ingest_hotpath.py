"""Per-reading CPU of the sensor ingest hot path, without servers.

Times, in microseconds per reading (best of a few bounded rounds, so a noisy
neighbour on a shared machine inflates the figures less):

- the message id: stable_id(device_id, canonical_timestamp(ts))
- check_reading on valid readings like `wireway bench sensor` sends
- SensorEnrich.process and .committed
- Dedupe.process and .committed (by messageId)

Run: .venv/bin/python benchmarks/ingest_hotpath.py [--readings N] [--rounds R]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec
from delivery_hotpath import sensor_app

from wireway.apps.sensor_ingest.enrich import EnrichConfig, SensorEnrich
from wireway.apps.sensor_ingest.metrics import INGESTED
from wireway.apps.sensor_ingest.reading import check_reading
from wireway.bench.load import reading_json
from wireway.envelope import Message, canonical_timestamp, stable_id
from wireway.processors.dedupe import Dedupe, DedupeConfig

BATCH = 100  # readings per batch given to the processors
DEVICES = 50


def readings(n: int, start: float) -> list[dict[str, Any]]:
    """n distinct valid readings, as the bench publisher would send them (1 ms apart)."""
    return [msgspec.json.decode(reading_json(i % DEVICES, start + i / 1000, i)) for i in range(n)]


def messages(payloads: list[dict[str, Any]], arrived: str) -> list[Message]:
    return [
        Message(
            message_id=stable_id(p["device_id"], canonical_timestamp(p["timestamp"])),
            timestamp=arrived,
            payload=p,
            source="bench",
        )
        for p in payloads
    ]


def batches(msgs: list[Message]) -> list[list[Message]]:
    return [msgs[i : i + BATCH] for i in range(0, len(msgs), BATCH)]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (the processors' process()) without a loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine suspended")


def best_us(fn: Callable[[], object], count: int, rounds: int) -> float:
    """The fastest round's CPU time per item, in microseconds."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time_ns()
        fn()
        best = min(best, (time.process_time_ns() - t0) / count / 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, rounds = max(BATCH, args.readings), max(1, args.rounds)
    now = time.time()
    payloads = readings(n, now - 60)
    arrived = "2025-10-16T18:33:58.123Z"
    results: dict[str, float] = {}

    pairs = [(p["device_id"], p["timestamp"]) for p in payloads]

    def ids() -> None:
        for device, ts in pairs:
            stable_id(device, canonical_timestamp(ts))

    results["stable_id(canonical_timestamp)"] = best_us(ids, n, rounds)

    def checks() -> None:
        for p in payloads:
            if check_reading(p, now):
                raise AssertionError("a bench reading failed the check")

    results["check_reading"] = best_us(checks, n, rounds)

    enrich = SensorEnrich(EnrichConfig(), base_dir=Path("."))
    enrich.use_service(sensor_app())
    groups = batches(messages(payloads, arrived))
    results["SensorEnrich.process"] = best_us(lambda: [run(enrich.process(b)) for b in groups], n, rounds)
    INGESTED.setup(False)
    results["SensorEnrich.committed"] = best_us(lambda: [enrich.committed(b) for b in groups], n, rounds)

    # fresh ids per round: a committed id would make the next round all duplicates
    def dedupe_round(r: int) -> tuple[float, float]:
        dedupe = Dedupe(DedupeConfig(), base_dir=Path("."))
        fresh = batches(messages(readings(n, now - 3600 * (r + 2)), arrived))
        t0 = time.process_time_ns()
        for b in fresh:
            run(dedupe.process(b))
        t1 = time.process_time_ns()
        for b in fresh:
            dedupe.committed(b)
        t2 = time.process_time_ns()
        return (t1 - t0) / n / 1000, (t2 - t1) / n / 1000

    timings = [dedupe_round(r) for r in range(rounds)]
    results["Dedupe.process"] = min(t[0] for t in timings)
    results["Dedupe.committed"] = min(t[1] for t in timings)

    width = max(map(len, results))
    print(f"{n} readings, batches of {BATCH}, best of {rounds} rounds (CPU us/reading)")
    for name, us in results.items():
        print(f"  {name:<{width}}  {us:7.2f}")
    # SensorEnrich.process runs check_reading itself: count it once
    total = sum(us for name, us in results.items() if name != "check_reading")
    print(f"  {'total (check_reading once)':<{width}}  {total:7.2f}")


if __name__ == "__main__":
    main()
