"""`/api/webhook/kismet-data`: the kismet input's latest devices, networks and alerts in
the shapes the kit's Node service answered, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from wireway.apps.fieldkit.control.scripts import ControlError, iso

TYPES = ("devices", "networks", "alerts", "all")
SEVERITY = {0: "low", 5: "medium", 10: "high", 15: "critical"}


def number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def location(record: dict[str, Any]) -> dict[str, Any] | None:
    point = record.get("geopoint")
    if isinstance(point, list) and len(point) == 2 and any(point):
        return {"lat": point[1], "lon": point[0], "alt": record.get("alt") or None}
    return None


def device(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "mac": record.get("mac"),
        "firstSeen": iso(number(record.get("first_time")) or None),
        "lastSeen": iso(number(record.get("last_time")) or None),
        "manufacturer": record.get("manuf") or "Unknown",
        "type": record.get("type") or "Unknown",
        "name": record.get("commonname") or record.get("name") or None,
        "channel": record.get("channel") or None,
        "signal": {"last": record.get("rssi") or 0},
        "location": location(record),
    }


def encryption(crypt: Any) -> str:
    text = str(crypt or "")
    for name in ("WPA3", "WPA2", "WPA", "WEP"):
        if name in text:
            return name
    return "Open" if not text or text == "0" or text.lower() == "none" else "Unknown"


def network(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "ssid": record.get("ssid") or record.get("commonname") or "<Hidden>",
        "bssid": record.get("mac"),
        "channel": record.get("channel") or 0,
        "frequency": record.get("frequency") or 0,
        "encryption": encryption(record.get("crypt")),
        "firstSeen": iso(number(record.get("first_time")) or None),
        "lastSeen": iso(number(record.get("last_time")) or None),
        "signal": {"last": record.get("rssi") or 0},
        "location": location(record),
    }


def alert(record: dict[str, Any]) -> dict[str, Any]:
    severity = record.get("kismet.alert.severity")
    when = number(record.get("kismet.alert.timestamp"))
    return {
        "id": record.get("kismet.alert.hash") or record.get("kismet.alert.id"),
        "type": record.get("kismet.alert.class") or record.get("kismet.alert.header"),
        "severity": SEVERITY.get(severity, "medium") if isinstance(severity, int) else "medium",
        "timestamp": iso(when or None),
        "message": record.get("kismet.alert.text"),
        "details": {
            "source": record.get("kismet.alert.source_mac"),
            "dest": record.get("kismet.alert.dest_mac"),
            "channel": record.get("kismet.alert.channel"),
        },
    }


def is_network(record: dict[str, Any]) -> bool:
    return str(record.get("type") or "").endswith("AP")


def parse_query(params: dict[str, str]) -> tuple[str, int, float | None, str]:
    """type, limit, since (epoch seconds) and format, or ControlError 400."""
    kind = params.get("type", "all")
    if kind not in TYPES:
        raise ControlError(
            400, "INVALID_TYPE", "Invalid data type specified", f"Valid types: {', '.join(TYPES)}"
        )
    try:
        limit = int(params.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise ControlError(
            400, "VALIDATION_ERROR", "limit must be an integer from 1 to 1000", params.get("limit")
        )
    since: float | None = None
    if params.get("since"):
        text = params["since"]
        try:
            since = (
                float(text)
                if text.replace(".", "", 1).isdigit()
                else datetime.fromisoformat(text).timestamp()
            )
        except ValueError:
            raise ControlError(400, "VALIDATION_ERROR", "since must be an ISO 8601 time", text) from None
    fmt = params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ControlError(400, "VALIDATION_ERROR", "format must be json or csv", fmt)
    return kind, limit, since, fmt


def select(
    kind: str, limit: int, since: float | None, records: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> dict[str, Any]:
    """The answer's `data` (newest first), with its summary."""
    if since is not None:
        records = [r for r in records if number(r.get("last_time")) >= since]
        alerts = [a for a in alerts if number(a.get("kismet.alert.timestamp")) >= since]
    data: dict[str, Any] = {}
    if kind in ("devices", "all"):
        data["devices"] = [device(r) for r in records[:limit]]
    if kind in ("networks", "all"):
        data["networks"] = [network(r) for r in records if is_network(r)][:limit]
    if kind in ("alerts", "all"):
        data["alerts"] = [alert(a) for a in alerts[:limit]]
    data["summary"] = {
        "totalDevices": len(data.get("devices", [])),
        "totalNetworks": len(data.get("networks", [])),
        "activeAlerts": sum(1 for a in data.get("alerts", []) if a["severity"] in ("high", "critical")),
        "dataRange": {
            "start": iso(since),
            "end": iso(max((number(r.get("last_time")) for r in records), default=0) or None),
        },
    }
    return data


def flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def to_csv(data: dict[str, Any]) -> str:
    """One row per record (devices, then networks, then alerts), a `kind` column first."""
    rows = [
        {"kind": kind[:-1], **flat(r)}
        for kind in ("devices", "networks", "alerts")
        for r in data.get(kind, [])
    ]
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["kind"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
