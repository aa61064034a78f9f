"""The control API as an application service: its own server (port 8092), the scripts
over the engine's supervisor, and the live events of the `/webhook` WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from wireway.apps.fieldkit.control.errors import shaped
from wireway.apps.fieldkit.control.info import Info
from wireway.apps.fieldkit.control.kismet_data import alert as alert_shape
from wireway.apps.fieldkit.control.kismet_data import device
from wireway.apps.fieldkit.control.live import Hub
from wireway.apps.fieldkit.control.options import ControlOptions
from wireway.apps.fieldkit.control.scripts import Scripts
from wireway.apps.fieldkit.http_server import OperatorServer
from wireway.connectors.base import AppService, EngineView
from wireway.connectors.hostport import parse_hostport
from wireway.observability import logging as log
from wireway.processors.devices_view import DevicesView

logger = log.get("fieldkit-control")
WATCH_SECONDS = 0.5  # how often the scripts' states are compared for statusUpdate events


class KitControl(AppService):
    """Serves the control API (`control_app`) on `options.listen`; `statusUpdate` goes to
    the `status` channel whenever a script starts or stops (on request or on its own),
    `newDevice` and `alert` as the kismet input reports them."""

    name = "fieldkit-control"

    def __init__(self, view: EngineView) -> None:
        super().__init__(view)
        self.options = ControlOptions()
        self.hub = Hub()
        self.scripts = Scripts(self.options, view.services)
        self.info = Info(self.options, view.services, view.data_dir)
        self.server: OperatorServer | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.last: dict[str, tuple[bool, int | None]] = {}
        self.asgi: Callable[[KitControl], Any] | None = None  # the API's app (given by the step)

    def configure(self, options: ControlOptions) -> None:
        self.options = options
        self.scripts = Scripts(options, self.view.services)
        self.info = Info(options, self.view.services, self.view.data_dir)

    @property
    def board(self) -> DevicesView | None:
        return self.view.service(DevicesView)

    async def start(self) -> None:
        board = self.board
        if board is not None:
            board.device_listeners.append(self._device)
            board.alert_listeners.append(self._alert)
        if self.view.services is not None:
            self.watcher = asyncio.create_task(self._watch(), name="wireway[fieldkit-control].watch")
        if self.options.listen and self.asgi is not None:
            host, port = parse_hostport(self.options.listen)
            self.server = OperatorServer(shaped(self.asgi(self)), host, port)
            await self.server.start()
            logger.info("field kit control API", address=f"http://{host}:{port}/api/webhook/")

    async def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watcher
            self.watcher = None
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def health(self) -> dict[str, str]:
        if not self.options.listen:
            return {}
        return {"fieldkit-control": "up" if self.server is not None and self.server.started else "down"}

    # ----- live events ----------------------------------------------------------------
    def status_for(self, script: str | None) -> Any:
        if script is None:
            return self.scripts.every_status()
        return self.scripts.status(self.scripts.script(script))

    def status_changed(self, script: str) -> None:
        """Tell the `status` channel about the scripts whose state changed."""
        names = list(self.options.scripts) if script == "both" else [script]
        for name in names:
            status = self.scripts.status(name)
            now = (bool(status["running"]), status["pid"])
            if self.last.get(name) == now:
                continue
            self.last[name] = now
            data = {
                "script": name,
                "status": "running" if now[0] else "stopped",
                "pid": now[1],
                "detail": status,
            }
            self.hub.broadcast("status", "statusUpdate", data)

    async def _watch(self) -> None:
        while True:
            try:
                self.status_changed("both")
            except Exception as exc:  # noqa: BLE001  (a status that cannot be read now: next time)
                logger.warning("script status unreadable", error=str(exc))
            await asyncio.sleep(WATCH_SECONDS)

    def _device(self, source: str, record: dict[str, Any], new: bool) -> None:
        if new and self._ours(source):
            self.hub.broadcast("devices", "newDevice", device(record))

    def _alert(self, source: str, record: dict[str, Any]) -> None:
        if self._ours(source):
            self.hub.broadcast("alerts", "alert", alert_shape(record))

    def _ours(self, source: str) -> bool:
        return not self.options.kismet_input or source == self.options.kismet_input
