"""What the `http_client` output reads and writes in headers besides the body: header
templates filled from a message, and an answer's Retry-After."""

from __future__ import annotations

import email.utils
from datetime import UTC
from typing import Any

from wireway.connectors.http_client.config import PLACEHOLDER


def field_of(wire: dict[str, Any], path: str) -> str:
    """The text of a field of the message on the wire (`payload.device_id`); KeyError
    names the field when it is missing."""
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
    text = str(node).lower() if isinstance(node, bool) else str(node)
    if "\r" in text or "\n" in text:
        raise ValueError(f"field {path} holds a line break")
    return text


def fill(templates: dict[str, str], wire: dict[str, Any]) -> dict[str, str]:
    """The header values for one message (KeyError / ValueError when one cannot be made)."""
    return {name: PLACEHOLDER.sub(lambda m: field_of(wire, m.group(1)), v) for name, v in templates.items()}


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait that a Retry-After value asks for (delta seconds or an HTTP date),
    or None when there is none or it cannot be read."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
