"""One WebSocket client of a hub: its scope, what it subscribed to, and its bounded send queue.

What a client receives of a published message is decided in two steps. First its
`Scope`, when the hub's `authenticate` hook gave it one at admission: what that
credential may ever see, fixed for the connection. Then a `Select` hook:
`(kind, data, subscription) -> data`, a changed copy, or `SKIP`. The hub's own,
`match_filters`, passes a message when every filter key of the subscription
equals one of its values; an application installs its own to add rules of its
domain (see `Hub.install`). A subscription can only narrow what the scope lets
through: the hook never sees a message the scope refused.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from starlette.websockets import WebSocket

SKIP: Any = object()
"""What a `Select` hook returns when the client does not get the message."""


_ABSENT: Any = object()


@dataclass(frozen=True, init=False)
class Scope:
    """What one admitted client may ever receive; set by the `authenticate` hook.

    Args:
        fields: top-level keys of a message's data and the one value each must have
            (`{"device_id": "esp32-001"}`); a message whose data is not an object, or
            lacks one of them, is not sent.
        kinds: the message kinds (`type`) it may receive; None: any kind.
    """

    fields: Mapping[str, Any]
    kinds: frozenset[str] | None

    def __init__(self, fields: Mapping[str, Any], kinds: frozenset[str] | set[str] | None = None) -> None:
        # copies: a hook's dict changed later must not widen a client's scope
        object.__setattr__(self, "fields", MappingProxyType(dict(fields)))
        object.__setattr__(self, "kinds", None if kinds is None else frozenset(kinds))

    def allows(self, kind: str, data: Any) -> bool:
        """Whether a message of `kind` with `data` is within this scope."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        if not isinstance(data, Mapping):
            return False
        return all(data.get(key, _ABSENT) == value for key, value in self.fields.items())

    def describe(self) -> dict[str, Any]:
        """The scope as plain JSON values (for `stats`)."""
        return {"fields": dict(self.fields), "kinds": None if self.kinds is None else sorted(self.kinds)}


@dataclass
class Subscription:
    """A client's last `{"type": "subscribe", ...}` message.

    Args:
        filters: each filter as a list of accepted values (see `normalize_filters`).
        options: every other key of the subscribe message, for an application's
            hook to read (e.g. `"alerts": true`); echoed in the `subscribed` reply.
    """

    filters: dict[str, list[Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


Select = Callable[[str, Any, "Subscription | None"], Any]
"""(kind, data, the client's subscription, None if it never subscribed) -> what it gets."""


def normalize_filters(filters: dict[str, Any]) -> dict[str, list[Any]]:
    """Each filter as a list of accepted values; empty ones (null, "", []) are ignored."""
    out: dict[str, list[Any]] = {}
    for key, value in filters.items():
        values = value if isinstance(value, list) else [value]
        values = [v for v in values if v is not None and v != ""]
        if values:
            out[str(key)] = values
    return out


def match_filters(kind: str, data: Any, subscription: Subscription | None) -> Any:
    """The hub's own `Select`: every filter key must be in `data` with an accepted value."""
    if subscription is None or not subscription.filters:
        return data
    if not isinstance(data, dict):
        return SKIP
    for key, allowed in subscription.filters.items():
        if key not in data or data[key] not in allowed:
            return SKIP
    return data


class Client:
    """One connected client: its scope, its subscription and its bounded send queue.

    `streaming` is False between an `unsubscribe` and the next `subscribe`: the
    client then receives only the answers to its own messages. `scope` (None: every
    message) is set once at admission and never changed by the client.
    """

    def __init__(self, cid: int, websocket: WebSocket, peer: str, limit: int) -> None:
        self.id = cid
        self.websocket = websocket
        self.peer = peer
        self.limit = limit
        self.queue: deque[str] = deque()
        self.wakeup = asyncio.Event()
        self.scope: Scope | None = None
        self.subscription: Subscription | None = None
        self.streaming = True
        self.dropped = 0
        self.sent = 0

    def push(self, text: str) -> bool:
        """Queue one message; True when the oldest one had to be dropped for it."""
        dropped = len(self.queue) >= self.limit
        if dropped:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(text)
        self.wakeup.set()
        return dropped

    def stats(self) -> dict[str, Any]:
        subscription = self.subscription
        return {
            "id": self.id,
            "peer": self.peer,
            "queued": len(self.queue),
            "sent": self.sent,
            "dropped": self.dropped,
            "streaming": self.streaming,
            "scope": self.scope.describe() if self.scope is not None else None,
            "filters": subscription.filters if subscription else None,
            "options": subscription.options if subscription else None,
        }
