"""The websocket connector: a live hub on the HTTP server and the `websocket` output."""

from wireway.connectors.websocket.hub import Hub, get_hub

__all__ = ["Hub", "get_hub"]
