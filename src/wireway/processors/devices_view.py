"""The engine's "latest devices" board: what a `kismet` input last heard of each device,
the alerts of its eventbus, and whether Kismet answers, for an application's API
(the field kit's `/api/webhook/kismet-data`) and its live feeds.

One instance per engine (an application service): the `kismet` inputs publish to it,
the components that read it name it in `service_class`.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wireway.processors.base import AppService, EngineView

DEVICES_KEPT = 10_000  # the most recently seen devices kept (the oldest is forgotten first)
ALERTS_KEPT = 1_000

Listener = Callable[[str, dict[str, Any]], None]


@dataclass
class Source:
    """One `kismet` input as the board knows it."""

    problem: str | None = "not asked yet"  # why Kismet does not answer (None: it answers)
    checked: float | None = None  # when it was last asked


@dataclass
class Board:
    devices: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=ALERTS_KEPT))


class DevicesView(AppService):
    """The newest record of each device (by `key`, else `mac`), the latest alerts, and
    each input's reachability; `on_device` / `on_alert` listeners hear of each as it
    arrives (a device new to the board comes with `new=True`)."""

    name = "devices"

    def __init__(self, view: EngineView) -> None:
        super().__init__(view)
        self.board = Board()
        self.sources: dict[str, Source] = {}
        self.device_listeners: list[Callable[[str, dict[str, Any], bool], None]] = []
        self.alert_listeners: list[Listener] = []
        self.clock: Callable[[], float] = time.time

    # ----- what the inputs publish -----------------------------------------------------
    def devices(self, source: str, records: list[dict[str, Any]]) -> None:
        board = self.board.devices
        for record in records:
            key = str(record.get("key") or record.get("mac") or "")
            if not key:
                continue
            new = key not in board
            board[key] = record
            board.move_to_end(key)
            if len(board) > DEVICES_KEPT:
                board.popitem(last=False)
            for listener in list(self.device_listeners):
                listener(source, record, new)

    def alert(self, source: str, alert: dict[str, Any]) -> None:
        self.board.alerts.append(alert)
        for listener in list(self.alert_listeners):
            listener(source, alert)

    def answering(self, source: str, problem: str | None) -> None:
        """Whether `source`'s Kismet answered its last check (`problem` None) or why not."""
        known = self.sources.setdefault(source, Source())
        known.problem, known.checked = problem, self.clock()

    # ----- what readers see ------------------------------------------------------------
    def available(self) -> tuple[bool, str]:
        """Whether any input's Kismet answers, else the reason (none configured, or why)."""
        if not self.sources:
            return False, "no kismet input is configured"
        problems = [s.problem for s in self.sources.values()]
        if any(p is None for p in problems):
            return True, ""
        return False, "; ".join(str(p) for p in problems)

    def latest(self) -> list[dict[str, Any]]:
        """Every device kept, the most recently seen first."""
        return list(reversed(self.board.devices.values()))

    def alerts(self) -> list[dict[str, Any]]:
        return list(reversed(self.board.alerts))
