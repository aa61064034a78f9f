"""A circuit breaker per output: closed -> open -> half-open -> closed."""

from __future__ import annotations

import time


class Breaker:
    """Opens after `threshold` consecutive failures; probes after a growing wait."""

    def __init__(self, threshold: int = 5, timeout: float = 5.0, max_timeout: float = 300.0) -> None:
        self.threshold = threshold
        self.base_timeout = timeout
        self.max_timeout = max_timeout
        self.timeout = timeout
        self.failures = 0
        self.opened_at = 0.0
        self.state = "closed"

    def wait(self, now: float | None = None) -> float:
        """Seconds to wait before the next attempt (0 when one may go now)."""
        if self.state != "open":
            return 0.0
        left = self.opened_at + self.timeout - (now if now is not None else time.monotonic())
        if left <= 0:
            self.state = "half-open"
            return 0.0
        return left

    def success(self) -> None:
        self.failures = 0
        self.state = "closed"
        self.timeout = self.base_timeout

    def failure(self, now: float | None = None) -> None:
        self.failures += 1
        if self.state == "half-open":
            self.timeout = min(self.timeout * 2, self.max_timeout)  # the probe failed: wait longer
            self._open(now)
        elif self.state == "closed" and self.failures >= self.threshold:
            self._open(now)

    def _open(self, now: float | None) -> None:
        self.state = "open"
        self.opened_at = now if now is not None else time.monotonic()
