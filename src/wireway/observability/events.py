"""One engine's notifications to the applications it runs (rejections, deliveries).

Each engine has its own `Events`: an application registers through its engine's view
and hears only of the messages of that engine, never of another one in the process.
"""

from __future__ import annotations

from collections.abc import Callable

RejectionListener = Callable[[str, str], None]
DeliveryListener = Callable[[str, str, list[float]], None]


class Events:
    """The listeners of one engine, and the calls its runtime makes to tell them."""

    __slots__ = ("_delivery_listeners", "_rejection_listeners")

    def __init__(self) -> None:
        self._rejection_listeners: list[RejectionListener] = []
        self._delivery_listeners: list[DeliveryListener] = []

    def on_rejection(self, listener: RejectionListener) -> None:
        """Call `listener(pattern, reason)` for every value an ingest refused or dead-lettered."""
        if listener not in self._rejection_listeners:
            self._rejection_listeners.append(listener)

    def on_delivered(self, listener: DeliveryListener) -> None:
        """Call `listener(pattern, output, latencies)` for every confirmed batch."""
        if listener not in self._delivery_listeners:
            self._delivery_listeners.append(listener)

    def rejected(self, pattern: str, reason: str) -> None:
        for listener in self._rejection_listeners:
            listener(pattern, reason)

    def delivered(self, pattern: str, output: str, latencies: list[float]) -> None:
        for listener in self._delivery_listeners:
            listener(pattern, output, latencies)
