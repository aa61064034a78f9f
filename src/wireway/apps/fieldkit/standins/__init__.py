"""Stand-ins for the field kit's programs when they are not installed (`--simulate`):
small Python programs taking the real program's arguments, named as what they stand
in for in every line they print, so the whole chain runs on a machine without a GPS
receiver or a WiFi card. Never used unless asked for."""

from __future__ import annotations

import math
import os
import signal
import time

from wireway.apps.fieldkit.simulate import ORIGIN


def say(name: str, text: str) -> None:
    """One line of output, saying whose stand-in speaks (readiness probes read it)."""
    print(f"[{name} stand-in, not the real program] {text}", flush=True)


def exit_on_sigterm(name: str) -> None:
    def stop(signum: int, frame: object) -> None:
        say(name, f"stopping on signal {signum}")
        os._exit(0)  # at once: what it writes is flushed as it goes

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def walk(t: float, lat: float = ORIGIN[0], lon: float = ORIGIN[1]) -> tuple[float, float]:
    """A slow walk around the simulated survey: a circle of about 150 m every ten minutes."""
    angle = 2 * math.pi * (t % 600.0) / 600.0
    return lat + 0.00135 * math.sin(angle), lon + 0.0022 * math.cos(angle)


def now() -> float:
    return time.time()
