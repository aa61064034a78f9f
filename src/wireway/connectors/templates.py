"""Names filled from each message: `events.{payload.device_id}` (a routing key, a
subject, a channel, a header value)."""

from __future__ import annotations

import re
from typing import Any

FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\}")


def check_template(template: str) -> None:
    """Raise ValueError unless every `{...}` of `template` is a dotted path."""
    rest = FIELD.sub("", template)
    if "{" in rest or "}" in rest:
        raise ValueError("a `{...}` placeholder must be a dotted path like {payload.device_id}")


def field_of(wire: dict[str, Any], path: str) -> str:
    """The text of a field of the message on the wire (`payload.device_id`, a list item
    by its index); KeyError names the field when it is missing or null."""
    node: Any = wire
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(path)
    if node is None:
        raise KeyError(path)
    return str(node).lower() if isinstance(node, bool) else str(node)


def fill(template: str, wire: dict[str, Any]) -> str:
    """'events.{payload.device_id}' -> 'events.d-1' (KeyError when a field is missing)."""
    return FIELD.sub(lambda m: field_of(wire, m.group(1)), template)
