"""What the `http_client` output reads and writes in headers besides the body: header
templates filled from a message, and an answer's Retry-After."""

from __future__ import annotations

import email.utils
from datetime import UTC
from typing import Any

from wireway.connectors.http_client.config import PLACEHOLDER
from wireway.connectors.templates import field_of


def fill(templates: dict[str, str], wire: dict[str, Any]) -> dict[str, str]:
    """The header values for one message (KeyError / ValueError when one cannot be made)."""
    values = {name: PLACEHOLDER.sub(lambda m: field_of(wire, m.group(1)), v) for name, v in templates.items()}
    for name, value in values.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} would hold a line break")
    return values


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
