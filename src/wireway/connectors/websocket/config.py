"""Options of the `websocket` output."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class WebSocketOutputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Push every message live to the WebSocket clients of a path (`/ws` by default).

    Clients connect to `path` on the HTTP port (and, with `port`, to any path of a
    second port, on the HTTP server's interface unless `host` names another). The
    server greets with `{"type":"connected",...}` and then pushes
    `{"type":<kind>,"data":<payload>,"timestamp":...}` for each message (`kind`:
    the message's `messageType` unless set). A client may send
    `{"type":"subscribe","filters":{"device_id":...}}` (each filter a value or a
    list: only messages whose field has one of the values),
    `{"type":"unsubscribe"}` (no messages until it subscribes again) and
    `{"type":"ping"}` (answered `pong`). A client that never subscribed receives
    every message. An application may add rules of its own for the clients of a
    path (the sensor application's: a `sensor_type` filter trims `sensors` to the
    named ones; `alert` and `occupancy` messages go only to clients that
    subscribed with `"alerts": true` / `"occupancy": true`).

    Delivery is live and best-effort by design: `write` hands each message to the
    hub and returns at once, so the output never holds up the pattern; a client
    that is not connected misses the message. Each client has a queue of
    `queue_size` messages; when a slow client lets it fill, its oldest messages are
    dropped for that client alone (and counted). The server sends protocol-level
    ping frames every `ping_interval` seconds and closes a client whose pong does
    not come within `ping_timeout` (default: `ping_interval`). Several outputs with
    the same `path` share one hub.
    """

    path: Annotated[str, Meta(pattern=r"^/\S*$", description="WebSocket path on the HTTP port")] = "/ws"
    port: Annotated[int | None, Meta(description="also serve WebSocket clients on this port, any path")] = (
        None
    )
    websocket_port: Annotated[
        int | None, Meta(description="the existing service's name for `port` (not both)")
    ] = None
    host: Annotated[
        str | None,
        Meta(description="interface of the extra `port` (default: the HTTP server's host, `--http`)"),
    ] = None
    kind: Annotated[
        str | None, Meta(description="the `type` of pushed messages (default: each one's `messageType`)")
    ] = None
    payload_only: Annotated[
        bool, Meta(description="push the payload as `data` (false: the whole envelope)")
    ] = True
    queue_size: Annotated[int, Meta(ge=1, description="messages queued per client")] = 1000
    ping_interval: Annotated[float, Meta(gt=0, description="seconds between pings")] = 30.0
    ping_timeout: Annotated[
        float | None, Meta(description="seconds to wait for a pong (default: ping_interval)")
    ] = None

    def __post_init__(self) -> None:
        if self.websocket_port is not None:
            if self.port not in (None, 0):
                raise ValueError("set `port` or `websocket_port`, not both - at `$.websocket_port`")
            self.port, self.websocket_port = self.websocket_port, None
        if self.port == 0:  # `port: ${WIREWAY_WEBSOCKET_PORT:-0}` means none
            self.port = None
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError("expected a port from 1 to 65535 - at `$.port`")
        if self.kind == "":
            raise ValueError("expected a non-empty type name - at `$.kind`")
        if self.ping_timeout is not None and self.ping_timeout <= 0:
            raise ValueError("expected a positive number of seconds - at `$.ping_timeout`")
