"""MAVLink messages as payloads: units converted, "unknown" markers as null."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

UINT16_MAX = 65535
FIX_NAMES = {2: "2d", 3: "3d", 4: "dgps", 5: "rtk float", 6: "rtk fixed", 7: "static", 8: "ppp"}
EPOCH_2001_US = 978_307_200_000_000  # a time_usec below this counts from boot, not 1970


def _known16(value: int, per_unit: float) -> float | None:
    return None if value == UINT16_MAX else value / per_unit


def _nonzero(value: int, per_unit: float) -> float | None:
    return None if not value else value / per_unit


def _names(msg: Any) -> dict[str, Any]:
    return {"system": msg.get_srcSystem(), "component": msg.get_srcComponent()}


def global_position_int(msg: Any) -> dict[str, Any]:
    """GLOBAL_POSITION_INT: the autopilot's fused position (MSL altitude)."""
    msl = msg.alt / 1000
    return {
        **_names(msg),
        "time_boot_ms": msg.time_boot_ms,
        "lat": msg.lat / 1e7,
        "lon": msg.lon / 1e7,
        "alt_m": msl,
        "alt_msl_m": msl,
        "relative_alt_m": msg.relative_alt / 1000,
        "vx_mps": msg.vx / 100,
        "vy_mps": msg.vy / 100,
        "vz_mps": msg.vz / 100,
        "heading_deg": _known16(msg.hdg, 100),
    }


def gps_raw_int(msg: Any) -> dict[str, Any]:
    """GPS_RAW_INT: the receiver's own fix."""
    hae = _nonzero(getattr(msg, "alt_ellipsoid", 0), 1000)
    msl = msg.alt / 1000
    usec = msg.time_usec
    time = None
    if usec >= EPOCH_2001_US:
        time = (
            datetime.fromtimestamp(usec / 1e6, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
    return {
        **_names(msg),
        "time": time,
        "fix_type": msg.fix_type,
        "fix": FIX_NAMES.get(msg.fix_type, "no fix"),
        "lat": msg.lat / 1e7,
        "lon": msg.lon / 1e7,
        "alt_m": hae if hae is not None else msl,
        "alt_hae_m": hae,
        "alt_msl_m": msl,
        "hdop": _known16(msg.eph, 100),
        "vdop": _known16(msg.epv, 100),
        "speed_mps": _known16(msg.vel, 100),
        "track_deg": _known16(msg.cog, 100),
        "satellites": None if msg.satellites_visible == 255 else msg.satellites_visible,
        "h_acc_m": _nonzero(getattr(msg, "h_acc", 0), 1000),
        "v_acc_m": _nonzero(getattr(msg, "v_acc", 0), 1000),
    }


def named_value(msg: Any) -> dict[str, Any]:
    """NAMED_VALUE_FLOAT / NAMED_VALUE_INT: {<name>: value}."""
    name = msg.name
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    return {name.rstrip("\x00"): msg.value, **_names(msg), "time_boot_ms": msg.time_boot_ms}


def fields(msg: Any) -> dict[str, Any]:
    """Any other message: its fields as pymavlink decodes them (bytes as text)."""
    out = {**_names(msg)}
    for key, value in msg.to_dict().items():
        if key == "mavpackettype":
            continue
        out[key] = value.decode(errors="replace") if isinstance(value, bytes) else value
    return out


CONVERT = {
    "GLOBAL_POSITION_INT": global_position_int,
    "GPS_RAW_INT": gps_raw_int,
    "NAMED_VALUE_FLOAT": named_value,
    "NAMED_VALUE_INT": named_value,
}


def payload(kind: str, msg: Any) -> dict[str, Any]:
    return CONVERT.get(kind, fields)(msg)


def position(kind: str, body: dict[str, Any]) -> tuple[float, float, float | None, str | None] | None:
    """(lat, lon, alt, time) when the payload is a usable fix, else None."""
    if kind == "GLOBAL_POSITION_INT":
        if body["lat"] == 0 and body["lon"] == 0:
            return None  # what an autopilot sends before its first fix
        return body["lat"], body["lon"], body["alt_m"], None
    if kind == "GPS_RAW_INT" and body["fix_type"] >= 2:
        return body["lat"], body["lon"], body["alt_m"], body["time"]
    return None
