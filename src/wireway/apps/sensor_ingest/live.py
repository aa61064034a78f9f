"""The sensor application's rules for live WebSocket clients, installed on the hub.

What the existing sensor service's clients expect beyond the hub's generic filters:

- a `sensor_type` filter passes readings whose `sensors` object has one of the
  named sensors, trimmed to those (a copy for that client);
- `alert` and `occupancy` messages go only to clients that subscribed with
  `"alerts": true` / `"occupancy": true`, and for them a filter on a key the
  event does not carry (`sensor_type` on an occupancy change) is ignored.

A device's credential (device key or device JWT) is let in with `device_scope`: the
hub sends it its own device's readings and alerts and nothing else, whatever it
subscribes to; occupancy changes are the admin's, like `/api/v1/occupancy`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wireway.connectors.websocket.admission import Authenticate
from wireway.connectors.websocket.clients import SKIP, Scope, Subscription
from wireway.connectors.websocket.hub import Hub

OPT_IN = {"alert": "alerts", "occupancy": "occupancy"}  # message kind -> subscribe flag it needs


def select(kind: str, data: Any, subscription: Subscription | None) -> Any:
    """What one client gets of a message: `data`, a trimmed copy, or `SKIP`."""
    flag = OPT_IN.get(kind)
    if flag is not None and (subscription is None or subscription.options.get(flag) is not True):
        return SKIP
    if subscription is None or not subscription.filters:
        return data
    if not isinstance(data, dict):
        return SKIP
    view = data
    for key, allowed in subscription.filters.items():
        sensors = data.get("sensors") if key == "sensor_type" else None
        if isinstance(sensors, dict):
            kept = {name: value for name, value in sensors.items() if name in allowed}
            if not kept:
                return SKIP
            if len(kept) != len(sensors):
                view = {**view, "sensors": kept}
            continue
        if key not in data:
            if flag is not None:
                continue
            return SKIP
        if data[key] not in allowed:
            return SKIP
    return view


def device_scope(device_id: str, kinds: Iterable[str]) -> Scope:
    """What a device's client may receive: messages of `kinds` (its readings, its
    alerts) whose `device_id` is its own."""
    return Scope({"device_id": device_id}, frozenset(kinds))


def install(hub: Hub, authenticate: Authenticate | None) -> None:
    """The sensor rules on `hub`, with the application's authentication (None: open)."""
    hub.install(select=select, authenticate=authenticate)
