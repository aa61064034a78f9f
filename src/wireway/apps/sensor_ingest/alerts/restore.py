"""Alerts stored in the database, read back at start."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from wireway.apps.sensor_ingest.alerts.rules import rfc3339
from wireway.observability import logging as log

logger = log.get("alerts")
ALERT_STATES = ("open", "acknowledged", "cleared")


def _time_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return rfc3339(value.timestamp())
    if isinstance(value, int | float):
        return rfc3339(float(value))
    return str(value)


def epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def restore_alert(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """A stored row (times as datetime or text, data as JSON text or object) as an alert."""
    try:
        data = row.get("data")
        if isinstance(data, str | bytes):
            data = msgspec.json.decode(data)
        state = str(row.get("state") or "open")
        first = _time_text(row.get("first_seen"))
        return {
            "id": str(row["id"]),
            "rule": str(row["rule"]),
            "device_id": str(row["device_id"]),
            "severity": str(row.get("severity") or "warning"),
            "state": state if state in ALERT_STATES else "open",
            "message": str(row.get("message") or ""),
            "count": int(row.get("count") or 1),
            "first_seen": first,
            "last_seen": _time_text(row.get("last_seen")) or first,
            "acknowledged_at": _time_text(row.get("acknowledged_at")),
            "cleared_at": _time_text(row.get("cleared_at")),
            "data": data if isinstance(data, dict) else {},
        }
    except (KeyError, TypeError, ValueError, msgspec.DecodeError) as exc:
        logger.warning("stored alert skipped", error=str(exc))
        return None
