"""The engine's "last fix" board: the newest position of each source (a `gpsd` or
`mavlink` input), for steps that attach it to messages (`gps`).

One instance per engine (an application service): the inputs that produce fixes and
the steps that read them name it in `service_class`, so they share it across patterns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from wireway.processors.base import AppService, EngineView


@dataclass(frozen=True, slots=True)
class Fix:
    """One position.

    Attributes:
        source: the name of the input that produced it.
        lat: degrees, WGS84.
        lon: degrees, WGS84.
        alt: metres (height above the ellipsoid when the source knows it), or None.
        time: the fix's own time (RFC 3339, from the receiver), or None.
        received: when it arrived, seconds since the epoch (what its age counts from).
    """

    source: str
    lat: float
    lon: float
    alt: float | None
    time: str | None
    received: float


class Positions(AppService):
    """The newest fix of each source, with when it arrived."""

    name = "positions"

    def __init__(self, view: EngineView) -> None:
        super().__init__(view)
        self.fixes: dict[str, Fix] = {}
        self.clock: Callable[[], float] = time.time

    def publish(
        self, source: str, lat: float, lon: float, alt: float | None = None, fix_time: str | None = None
    ) -> Fix:
        """Record the newest fix of `source` (it replaces the one before)."""
        fix = Fix(source, lat, lon, alt, fix_time, self.clock())
        self.fixes[source] = fix
        return fix

    def latest(self, source: str | None = None) -> Fix | None:
        """The newest fix of `source`, or of any source when None; None when there is none."""
        if source is not None:
            return self.fixes.get(source)
        return max(self.fixes.values(), key=lambda f: f.received, default=None)

    def age(self, fix: Fix) -> float:
        """Seconds since the fix arrived."""
        return max(0.0, self.clock() - fix.received)
