"""`wiglecsv`: the WiGLE CSV that Kismet and WiGLE for Android write, one row one device
sighting, columns mapped by name."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from typing import Any

import msgspec

from wireway.envelope import Message
from wireway.formats.codec import Codec, Record
from wireway.observability.metrics import RECORDS_SKIPPED
from wireway.registry import register_format

_OCTAL = re.compile(r"\\([0-7]{3})")
# column -> (payload key, type)
_COLUMNS: dict[str, tuple[str, str]] = {
    "MAC": ("mac", "str"),
    "SSID": ("ssid", "ssid"),
    "AuthMode": ("auth_mode", "str"),
    "FirstSeen": ("first_seen", "time"),
    "Channel": ("channel", "int"),
    "Frequency": ("frequency_mhz", "mhz"),
    "RSSI": ("rssi", "int"),
    "CurrentLatitude": ("lat", "float"),
    "CurrentLongitude": ("lon", "float"),
    "AltitudeMeters": ("alt_m", "float"),
    "AccuracyMeters": ("accuracy_m", "float"),
    "RCOIs": ("rcois", "str"),
    "MfgrId": ("mfgr_id", "str"),
    "Type": ("type", "str"),
}
_PREHEADER_KEYS = {"appRelease": "app_release", "model": "model", "device": "device", "release": "release"}


class WigleOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Options of the `wiglecsv` format.

    Reads both layouts Kismet writes (`WigleWifi-1.4`; `WigleWifi-1.6`, whose WiFi rows
    leave out the RCOIs and MfgrId columns) and WiGLE for Android's files. The
    pre-header line (`WigleWifi-1.6,appRelease=...,model=...,device=...`) becomes
    each row's `log` object; the column header is mapped by name, so a new layout's
    columns land where they belong. A row gives `mac`, `ssid` (Kismet's `\\054`-style
    octal escapes decoded), `auth_mode`, `first_seen` (RFC 3339 UTC), `channel`,
    `frequency_mhz` (Kismet's kHz normalised to MHz), `rssi`, `lat`, `lon`, `alt_m`,
    `accuracy_m`, `rcois`, `mfgr_id` and `type` (WIFI, BT, BLE, ...); a missing
    column is null. A row without a position fix (latitude and longitude both 0 or
    empty) is left out and counted (`wireway_records_skipped_total{reason="no_fix"}`)
    unless `keep_unfixed`; a malformed row goes to the DLQ with its line.
    """

    keep_unfixed: bool = False


def _ssid(text: str) -> str:
    """Kismet writes bytes it will not put in a CSV field as `\\ooo`: those bytes, as UTF-8."""
    if "\\" not in text:
        return text
    out = bytearray()
    last = 0
    for m in _OCTAL.finditer(text):
        out += text[last : m.start()].encode()
        out.append(int(m.group(1), 8))
        last = m.end()
    out += text[last:].encode()
    return out.decode("utf-8", "replace")


def _first_seen(text: str) -> str | None:
    if not text:
        return None
    stamp = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mhz(text: str) -> float | int | None:
    if not text:
        return None
    value = float(text)
    if value > 100_000:  # Kismet's live logger writes kHz
        value /= 1000
    return int(value) if value.is_integer() else value


def _convert(kind: str, text: str) -> Any:
    text = text.strip() if kind != "ssid" else text
    if kind == "str":
        return text
    if kind == "ssid":
        return _ssid(text)
    if kind == "time":
        return _first_seen(text)
    if kind == "mhz":
        return _mhz(text)
    if text == "":
        return None
    return int(text) if kind == "int" else float(text)


@register_format("wiglecsv", config=WigleOptions)
class WigleCodec(Codec):
    """WiGLE CSV rows (Kismet 1.4 and 1.6, WiGLE for Android), one message per sighting."""

    name = "wiglecsv"
    lines = True
    content_type = "text/csv; charset=utf-8"
    options: WigleOptions

    def __init__(self, options: WigleOptions | None = None) -> None:
        super().__init__(options or WigleOptions())
        self.log: dict[str, str] = {}
        self.columns: list[str] | None = None

    def decode_line(self, line: bytes, where: str = "") -> Record | None:
        text = line.decode("utf-8", "replace").lstrip("\ufeff")
        if not text.strip():
            return None
        if text.startswith("WigleWifi-"):  # a new file's pre-header: its header follows
            self.log = _preheader(text)
            self.columns = None
            return None
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            return Record(text, f"{where}: malformed CSV: {exc}", where)
        if self.columns is None or fields[:2] == ["MAC", "SSID"]:
            if "MAC" not in fields:
                return Record(text, f"{where}: expected the column header (MAC,SSID,...)", where)
            self.columns = [f.strip() for f in fields]
            return None
        return self.row(fields, text, where)

    def row(self, fields: list[str], text: str, where: str) -> Record | None:
        header = self.columns
        assert header is not None
        if len(fields) > len(header):
            return Record(text, f"{where}: {len(fields)} fields, the header has {len(header)}", where)
        value: dict[str, Any] = {key: None for key, _ in _COLUMNS.values()}
        names = header[: len(fields)]
        if len(fields) < len(header) and header[-1] == "Type":
            # Kismet's 1.6 WiFi rows stop before RCOIs and MfgrId and end with the type
            names = [*header[: len(fields) - 1], "Type"]
        try:
            for name, field in zip(names, fields, strict=True):
                known = _COLUMNS.get(name)
                if known is not None:
                    value[known[0]] = _convert(known[1], field)
        except ValueError as exc:
            return Record(text, f"{where}: column {name}: {exc}", where)
        if not value["mac"]:
            return Record(text, f"{where}: no MAC", where)
        if not self.options.keep_unfixed and not value["lat"] and not value["lon"]:
            RECORDS_SKIPPED.labels("wiglecsv", "no_fix").inc()
            return None
        value["log"] = self.log
        return Record(value, None, where)

    def encode(self, msg: Message, payload_only: bool = False) -> bytes:
        raise ValueError("wiglecsv is read-only: write csv instead")


def _preheader(text: str) -> dict[str, str]:
    parts = text.strip().split(",")
    log = {"layout": parts[0]}
    for part in parts[1:]:
        key, _, val = part.partition("=")
        if key in _PREHEADER_KEYS:
            log[_PREHEADER_KEYS[key]] = val
    return log
