"""The operators' settings: what WigleToTAK's API changes, kept in the data folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

# WigleToTAK2's antenna types and how much farther each hears than a standard card
SENSITIVITY_FACTORS = {
    "standard": 1.0,
    "alfa_card": 1.5,
    "high_gain": 2.0,
    "rpi_internal": 0.7,
    "custom": 1.0,
}


class Settings(msgspec.Struct, forbid_unknown_fields=False):
    """What the operators set through the API; the pattern's options are the first values."""

    broadcasting: bool = True
    analysis_mode: Literal["realtime", "postcollection"] = "realtime"
    directory: str = ""
    filename: str = ""
    tak_server_ip: str = ""
    tak_server_port: str = ""
    multicast: bool = True
    antenna_sensitivity: str = "standard"
    custom_factor: float = 1.0
    whitelisted_ssids: set[str] = msgspec.field(default_factory=set)
    whitelisted_macs: set[str] = msgspec.field(default_factory=set)
    blacklisted_ssids: dict[str, int] = msgspec.field(default_factory=dict)
    blacklisted_macs: dict[str, int] = msgspec.field(default_factory=dict)

    def sensitivity(self) -> float:
        if self.antenna_sensitivity == "custom":
            return self.custom_factor
        return SENSITIVITY_FACTORS.get(self.antenna_sensitivity, 1.0)

    def server(self) -> tuple[str, int] | None:
        """Where the TAK server is, or None (WigleToTAK's `0.0.0.0` placeholder is none)."""
        if not self.tak_server_ip or self.tak_server_ip == "0.0.0.0" or not self.tak_server_port:
            return None
        try:
            port = int(self.tak_server_port)
        except ValueError:
            return None
        return (self.tak_server_ip, port) if 0 < port < 65536 else None


def load(path: Path, first: Settings) -> Settings:
    """The settings kept at `path`, else `first` (an unreadable file is set aside, not lost)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return first
    try:
        return msgspec.json.decode(data, type=Settings)
    except (msgspec.DecodeError, msgspec.ValidationError):
        path.replace(path.with_suffix(".unreadable"))
        return first


def save(path: Path, settings: Settings) -> None:
    """Write the settings whole (a crash leaves the old file or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(msgspec.json.encode(settings))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
