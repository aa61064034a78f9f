"""The websocket connector: live hubs on the HTTP server and the `websocket` output."""

from wireway.connectors.websocket.hub import Hub
from wireway.connectors.websocket.hubs import WebSocketHubs

__all__ = ["Hub", "WebSocketHubs"]
