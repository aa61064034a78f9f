"""The live hubs of one engine: one per path, shared by its websocket outputs.

The engine builds one `WebSocketHubs` (the service class the `websocket` output
names) and hands it to each of its websocket outputs, which take the hub of their
path from it; an application finds the same instance with
`EngineView.service(WebSocketHubs)` to install its hooks. Two engines in one
process never share a hub.
"""

from __future__ import annotations

from collections.abc import Iterator

from starlette.routing import BaseRoute

from wireway.connectors.base import AppService, EngineView
from wireway.connectors.websocket.hub import Hub


class WebSocketHubs(AppService):
    """The engine's hubs by path (created when an output asks for its path)."""

    name = "websocket"

    def __init__(self, view: EngineView) -> None:
        super().__init__(view)
        self._hubs: dict[str, Hub] = {}

    def hub(self, path: str) -> Hub:
        """The hub of `path`, created on first use (several outputs may share it)."""
        hub = self._hubs.get(path)
        if hub is None:
            hub = self._hubs[path] = Hub(path, http_host=self.view.http_address[0])
        return hub

    def get(self, path: str) -> Hub | None:
        """The hub of `path`, None when no websocket output of the engine uses it."""
        return self._hubs.get(path)

    def __iter__(self) -> Iterator[Hub]:
        return iter(self._hubs.values())

    async def start(self) -> None:
        for hub in self:
            await hub.start()

    async def stop(self) -> None:
        for hub in self:
            await hub.stop()

    def routes(self) -> list[BaseRoute]:
        return [route for hub in self for route in hub.routes()]
