"""`wiglecsv`: the WiGLE CSV that Kismet and WiGLE for Android write, one row one device
sighting, columns mapped by name."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
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
_STAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})", re.ASCII)
STAMPS_KEPT = 4096  # FirstSeen texts remembered: a device's repeats on every row of it
_STAMPS: dict[str, str] = {}
_EMPTY: dict[str, Any] = {key: None for key, _ in _COLUMNS.values()}
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
    text = text.strip()
    known = _STAMPS.get(text)
    if known is not None:
        return known
    m = _STAMP.fullmatch(text)
    try:  # the usual form read without strptime; anything else (and its error) by it
        if m is None:
            raise ValueError
        year, month, day, hour, minute, second = map(int, m.groups())
        stamp = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        stamp = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    out = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if len(_STAMPS) >= STAMPS_KEPT:
        _STAMPS.clear()
    _STAMPS[text] = out
    return out


def _mhz(text: str) -> float | int | None:
    if not text:
        return None
    value = float(text)
    if value > 100_000:  # Kismet's live logger writes kHz
        value /= 1000
    return int(value) if value.is_integer() else value


def _str(text: str) -> str:
    return text.strip()


def _int(text: str) -> int | None:
    text = text.strip()
    return None if text == "" else int(text)


def _float(text: str) -> float | None:
    text = text.strip()
    return None if text == "" else float(text)


def _time(text: str) -> str | None:
    return _first_seen(text.strip())


def _frequency(text: str) -> float | int | None:
    return _mhz(text.strip())


_CONVERT: dict[str, Callable[[str], Any]] = {
    "str": _str,
    "ssid": _ssid,
    "time": _time,
    "mhz": _frequency,
    "int": _int,
    "float": _float,
}
Plan = list[tuple[str, str, Callable[[str], Any]]]  # (column, payload key, conversion)


def _split(text: str) -> list[str]:
    """The fields of one CSV line; without quotes or line breaks in it, what the csv
    module reads is the text between the commas."""
    if '"' in text or "\r" in text or "\n" in text:
        return next(csv.reader([text], strict=True))
    return text.split(",")


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
        self.plans: dict[int, Plan] = {}  # by the number of fields of a row

    def decode_line(self, line: bytes, where: str = "") -> Record | None:
        try:
            text = line.decode("utf-8").lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            # Kismet writes what is not text as \ooo escapes: raw bytes that are not UTF-8
            # are damage (a torn write, another program's file), not a network's name
            text = line.decode("utf-8", "replace")
            return Record(text, f"{where}: not UTF-8 (byte {exc.start + 1} of the line)", where)
        if not text.strip():
            return None
        if text.startswith("WigleWifi-"):  # a new file's pre-header: its header follows
            self.log = _preheader(text)
            self.columns = None
            return None
        try:
            fields = _split(text)
        except csv.Error as exc:
            return Record(text, f"{where}: malformed CSV: {exc}", where)
        if self.columns is None or fields[:2] == ["MAC", "SSID"]:
            if "MAC" not in fields:
                return Record(text, f"{where}: expected the column header (MAC,SSID,...)", where)
            self.columns = [f.strip() for f in fields]
            self.plans = {}
            return None
        return self.row(fields, text, where)

    def row(self, fields: list[str], text: str, where: str) -> Record | None:
        header = self.columns
        assert header is not None
        if len(fields) > len(header):
            return Record(text, f"{where}: {len(fields)} fields, the header has {len(header)}", where)
        plan = self.plans.get(len(fields))
        if plan is None:
            plan = self.plans[len(fields)] = self.plan(header, len(fields))
        value: dict[str, Any] = dict(_EMPTY)
        column = plan[0]
        try:
            for column, field in zip(plan, fields, strict=True):
                if column[1]:
                    value[column[1]] = column[2](field)
        except ValueError as exc:
            return Record(text, f"{where}: column {column[0]}: {exc}", where)
        if not value["mac"]:
            return Record(text, f"{where}: no MAC", where)
        if not self.options.keep_unfixed and not value["lat"] and not value["lon"]:
            RECORDS_SKIPPED.labels("wiglecsv", "no_fix").inc()
            return None
        value["log"] = self.log
        return Record(value, None, where)

    @staticmethod
    def plan(header: list[str], count: int) -> Plan:
        """What each field of a row of `count` fields is (an unknown column: no key)."""
        names = header[:count]
        if count < len(header) and header[-1] == "Type":
            # Kismet's 1.6 WiFi rows stop before RCOIs and MfgrId and end with the type
            names = [*header[: count - 1], "Type"]
        plan: Plan = []
        for name in names:
            key, kind = _COLUMNS.get(name, ("", "str"))
            plan.append((name, key, _CONVERT[kind]))
        return plan

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
