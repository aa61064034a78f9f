"""The `websocket` output: push messages live to the clients of its engine's hub."""

from __future__ import annotations

from typing import Any

from wireway.config.model import Interface, Pattern
from wireway.connectors.base import Output
from wireway.connectors.websocket.config import WebSocketOutputConfig
from wireway.connectors.websocket.hub import Hub
from wireway.connectors.websocket.hubs import WebSocketHubs
from wireway.envelope import Message
from wireway.registry import register_output


@register_output("websocket", config=WebSocketOutputConfig)
class WebSocketOutput(Output):
    """Push messages live to WebSocket clients; best-effort, never waits for them."""

    config: WebSocketOutputConfig
    service_class = WebSocketHubs

    def __init__(self, config: Any, iface: Interface, pattern: Pattern) -> None:
        super().__init__(config, iface, pattern)
        self.hub: Hub | None = None  # its path's hub, from the engine's hubs (use_service)

    def use_service(self, service: Any) -> None:
        assert isinstance(service, WebSocketHubs)
        config = self.config
        self.hub = service.hub(config.path)
        self.hub.configure(
            port=config.port,
            host=config.host,
            queue_size=config.queue_size,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
        )

    @property
    def listening(self) -> bool:
        return self.hub is not None and self.hub.clients > 0

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        # Live delivery: queued for the connected clients at once; a client that is
        # not connected now misses the message (that is what a live stream means).
        hub = self.hub
        assert hub is not None, "the engine hands the output its hub before it opens"
        kind, payload_only, publish = self.config.kind, self.config.payload_only, hub.publish
        for msg in batch:
            publish(kind or msg.message_type, msg.payload if payload_only else msg.to_context())
        return None
