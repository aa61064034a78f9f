"""In-process notifications applications can listen to (rejections, dead letters)."""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, str], None]
_rejection_listeners: list[Listener] = []


def on_rejection(listener: Listener) -> None:
    """Call `listener(pattern, reason)` for every value an ingest refused or dead-lettered."""
    if listener not in _rejection_listeners:
        _rejection_listeners.append(listener)


def rejected(pattern: str, reason: str) -> None:
    for listener in _rejection_listeners:
        listener(pattern, reason)


DeliveryListener = Callable[[str, str, list[float]], None]
_delivery_listeners: list[DeliveryListener] = []


def on_delivered(listener: DeliveryListener) -> None:
    """Call `listener(pattern, output, latencies)` for every confirmed batch."""
    if listener not in _delivery_listeners:
        _delivery_listeners.append(listener)


def delivered(pattern: str, output: str, latencies: list[float]) -> None:
    for listener in _delivery_listeners:
        listener(pattern, output, latencies)
