"""Which outputs each message goes to: the outputs' `when:` conditions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from wireway.envelope import Message
from wireway.runtime.delivery import Delivery

# how a `when:` reads each envelope field (the payload by reference: no copy per message)
_FIELDS: dict[str, Callable[[Message], Any]] = {
    "payload": lambda msg: msg.payload,
    "messageType": lambda msg: msg.message_type,
    "messageId": lambda msg: msg.message_id,
    "source": lambda msg: msg.source,
    "destination": lambda msg: msg.destination,
    "timestamp": lambda msg: msg.timestamp,
    "version": lambda msg: msg.version,
    "metadata": lambda msg: msgspec.to_builtins(msg.metadata),
}


def context_builder(names: set[str]) -> Callable[[Message], dict[str, Any]]:
    """The context the outputs' `when:` conditions read, holding only the fields they
    name (converting a whole envelope per message and output was most of routing)."""
    getters = [(name, _FIELDS[name]) for name in sorted(names) if name in _FIELDS]
    if len(getters) == 1:  # the usual `messageType == "..."`
        ((only, getter),) = getters
        return lambda msg: {only: getter(msg)}
    return lambda msg: {name: getter(msg) for name, getter in getters}


def choose_outputs(
    routes: list[Delivery], msgs: list[Message], context_of: Callable[[Message], dict[str, Any]]
) -> tuple[list[tuple[Delivery, Message]], dict[Delivery, int], int]:
    """(route, message) pairs to queue; per output nobody listens to, how many messages
    it would have had (they count as delivered once the rest is stored); and how many
    messages no output took."""
    entries: list[tuple[Delivery, Message]] = []
    unrouted = 0
    idle: dict[Delivery, int] = {}  # outputs nobody listens to: delivered at once
    for route in routes:
        if not route.output.listening:
            idle[route] = 0
    # a `when:` whose answer the messageType alone decides (`messageType == "x"`, or
    # `messageType == "alert" && payload.notify` for every other type) is evaluated
    # once per type and batch; the others once per message
    by_type: dict[tuple[int, str], bool | None] = {}
    for msg in msgs:
        ctx = None
        hit = False
        for n, route in enumerate(routes):
            when = route.iface.when
            if when is None:
                chosen = True
            else:
                key = (n, msg.message_type)
                if key in by_type:
                    decided = by_type[key]
                else:
                    decided = by_type[key] = when.settled_by({"messageType": msg.message_type})
                if decided is not None:
                    chosen = decided
                else:
                    if ctx is None:
                        ctx = context_of(msg)
                    chosen = when.test(ctx)
            if chosen:
                if idle and route in idle:
                    idle[route] += 1
                else:
                    entries.append((route, msg))
                hit = True
        unrouted += not hit
    return entries, idle, unrouted
