"""The `websocket` output: push messages live to the clients of a hub."""

from __future__ import annotations

from typing import Any

from wireway.config.model import Interface, Pattern
from wireway.connectors.base import Output, Service
from wireway.connectors.websocket.config import WebSocketOutputConfig
from wireway.connectors.websocket.hub import get_hub
from wireway.envelope import Message
from wireway.registry import register_output


@register_output("websocket", config=WebSocketOutputConfig)
class WebSocketOutput(Output):
    """Push messages live to WebSocket clients; best-effort, never waits for them."""

    config: WebSocketOutputConfig

    def __init__(self, config: Any, iface: Interface, pattern: Pattern) -> None:
        super().__init__(config, iface, pattern)
        self.hub = get_hub(config.path)
        self.hub.configure(
            port=config.port,
            host=config.host,
            queue_size=config.queue_size,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
        )

    @property
    def listening(self) -> bool:
        return self.hub.clients > 0

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        # Live delivery: queued for the connected clients at once; a client that is
        # not connected now misses the message (that is what a live stream means).
        kind, payload_only, publish = self.config.kind, self.config.payload_only, self.hub.publish
        for msg in batch:
            publish(kind or msg.message_type, msg.payload if payload_only else msg.to_context())
        return None

    def services(self) -> list[Service]:
        return [self.hub]
