"""The `wiglecsv` format against real Kismet and WiGLE-Android files (tests/data/)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from wireway import registry
from wireway.formats.codec import Codec
from wireway.observability.metrics import REGISTRY

DATA = Path(__file__).parent / "data"


def codec(**options: Any) -> Codec:
    spec = registry.lookup("format", "wiglecsv")
    assert spec is not None
    made: Codec = spec.cls(spec.config(**options))
    return made


def rows(name: str, **options: Any) -> list[Any]:
    c = codec(**options)
    out = []
    for n, line in enumerate((DATA / name).read_bytes().split(b"\n"), 1):
        record = c.decode_line(line, f"{name} line {n}")
        if record is not None:
            assert record.error is None, record.error
            out.append(record.value)
    return out


def skipped() -> float:
    return (
        REGISTRY.get_sample_value("wireway_records_skipped_total", {"format": "wiglecsv", "reason": "no_fix"})
        or 0.0
    )


def test_kismet_1_6_wifi_rows_of_12_fields_map_by_name() -> None:
    got = rows("kismet_wiglecsv_v1.6_layout.wiglecsv")
    home = got[0]
    assert home["mac"] == "AA:BB:CC:DD:EE:01"
    assert home["ssid"] == "HomeNet"
    assert home["type"] == "WIFI"
    assert home["rcois"] is None
    assert home["mfgr_id"] is None
    assert home["frequency_mhz"] == 2437  # Kismet's kHz
    assert home["channel"] == 6
    assert home["rssi"] == -61
    assert home["lat"] == 38.110494
    assert home["lon"] == -122.626897
    assert home["alt_m"] == 53.5
    assert home["first_seen"] == "2026-06-01T12:00:00.000Z"
    assert home["log"] == {
        "layout": "WigleWifi-1.6",
        "app_release": "Kismet202606-abc1234",
        "model": "Kismet",
        "release": "2026.06.0-abc1234",
        "device": "kismet",
    }
    assert [r["type"] for r in got] == ["WIFI", "WIFI", "BT", "BLE"]
    assert got[2]["ssid"] == "JBL Flip"
    assert got[2]["frequency_mhz"] is None


def test_both_kismet_layouts_give_the_same_fields() -> None:
    old = {r["mac"]: r for r in rows("kismet_wiglecsv_v1.4_layout.wiglecsv")}
    new = {r["mac"]: r for r in rows("kismet_wiglecsv_v1.6_layout.wiglecsv")}
    for mac in old.keys() & new.keys():
        for key in ("ssid", "auth_mode", "channel", "rssi", "lat", "lon", "alt_m", "accuracy_m", "type"):
            assert old[mac][key] == new[mac][key], (mac, key)
    assert old["AA:BB:CC:DD:EE:03"]["ssid"] == "Cafe, Guest"  # Kismet's \054


def test_wigle_android_file_without_final_newline() -> None:
    (row,) = rows("stinky_test-integration.wiglecsv")
    assert row["mac"] == "AA:BB:CC:DD:EE:FF"
    assert row["accuracy_m"] == 5.0
    assert row["log"]["model"] == "SM-G973F"


def test_a_header_row_is_never_a_record() -> None:
    c = codec()
    assert (
        c.decode_line(
            b"MAC,SSID,AuthMode,FirstSeen,Channel,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,AccuracyMeters,Type"
        )
        is None
    )
    again = c.decode_line(
        b"MAC,SSID,AuthMode,FirstSeen,Channel,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,AccuracyMeters,Type"
    )
    assert again is None


def test_rows_without_a_fix_are_counted_and_skipped() -> None:
    c = codec()
    c.decode_line(
        b"MAC,SSID,AuthMode,FirstSeen,Channel,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,AccuracyMeters,Type"
    )
    before = skipped()
    assert (
        c.decode_line(b"AA:00:00:00:00:01,x,[ESS],2024-06-01 12:00:00,6,-61,0.000000,0.000000,0,0,WIFI")
        is None
    )
    assert c.decode_line(b"AA:00:00:00:00:02,x,[ESS],2024-06-01 12:00:00,6,-61,,,0,0,WIFI") is None
    assert skipped() == before + 2
    kept = codec(keep_unfixed=True)
    kept.decode_line(b"MAC,SSID,CurrentLatitude,CurrentLongitude")
    record = kept.decode_line(b"AA:00:00:00:00:03,x,0,0")
    assert record is not None
    assert record.value["lat"] == 0.0


def test_malformed_rows_name_their_line() -> None:
    c = codec()
    c.decode_line(
        b"MAC,SSID,AuthMode,FirstSeen,Channel,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,AccuracyMeters,Type"
    )
    bad = c.decode_line(b"AA:00:00:00:00:01,x,[ESS],not a time,6,-61,1,2,0,0,WIFI", "k.wiglecsv line 9")
    assert bad is not None
    assert bad.error is not None
    assert bad.error.startswith("k.wiglecsv line 9: column FirstSeen")
    long = c.decode_line(b"a,b,c,d,e,f,g,h,i,j,k,l,m", "line 10")
    assert long is not None
    assert long.error == "line 10: 13 fields, the header has 11"


@given(st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=20))
def test_octal_escapes_decode_to_the_ssid(ssid: str) -> None:
    # Kismet writes a comma, a quote and non-ASCII text byte by byte as \ooo
    escaped = "".join(
        "".join(f"\\{b:03o}" for b in ch.encode()) if ch in ',"' or not ch.isascii() else ch for ch in ssid
    )
    if "\\" in ssid:
        return  # a literal backslash followed by digits is ambiguous in Kismet's escaping
    c = codec(keep_unfixed=True)
    c.decode_line(b"MAC,SSID")
    record = c.decode_line(f"AA:00:00:00:00:01,{escaped}".encode())
    assert record is not None
    assert record.value["ssid"] == ssid


# ---- the decoder against the plain reading it replaces ---------------------------------
def reference_row(header: list[str], line: str, keep_unfixed: bool) -> Any:
    """A row read the plain way: the csv module, strptime, the columns by name (the
    decoder's first form, kept here to hold the faster one to it)."""
    import csv
    from datetime import UTC, datetime

    from wireway.formats import wiglecsv_format as w

    def convert(kind: str, text: str) -> Any:
        text = text.strip() if kind != "ssid" else text
        if kind == "str":
            return text
        if kind == "ssid":
            return w._ssid(text)
        if kind == "time":
            if not text:
                return None
            stamp = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if kind == "mhz":
            return w._mhz(text)
        if text == "":
            return None
        return int(text) if kind == "int" else float(text)

    try:
        fields = next(csv.reader([line], strict=True))
    except csv.Error as exc:
        return ("error", f"malformed CSV: {exc}")
    if len(fields) > len(header):
        return ("error", f"{len(fields)} fields, the header has {len(header)}")
    value: dict[str, Any] = {key: None for key, _ in w._COLUMNS.values()}
    names = header[: len(fields)]
    if len(fields) < len(header) and header[-1] == "Type":
        names = [*header[: len(fields) - 1], "Type"]
    try:
        for name, field in zip(names, fields, strict=True):
            known = w._COLUMNS.get(name)
            if known is not None:
                value[known[0]] = convert(known[1], field)
    except ValueError as exc:
        return ("error", f"column {name}: {exc}")
    if not value["mac"]:
        return ("error", "no MAC")
    if not keep_unfixed and not value["lat"] and not value["lon"]:
        return None
    return value


HEADERS = {
    "1.4": "MAC,SSID,AuthMode,FirstSeen,Channel,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,"
    "AccuracyMeters,Type",
    "1.6": "MAC,SSID,AuthMode,FirstSeen,Channel,Frequency,RSSI,CurrentLatitude,CurrentLongitude,"
    "AltitudeMeters,AccuracyMeters,RCOIs,MfgrId,Type",
    "other": "MAC,Extra,SSID,RSSI,FirstSeen",
}
field_text = st.one_of(
    st.sampled_from(
        [
            "", " ", "AA:BB:CC:DD:EE:01", "x", '"a,b"', '"a""b"', 'a"b', "\\054", "\\342\\202\\254",
            "2026-12-04 10:00:00", "2026-1-4 1:2:3", "2026-02-31 10:00:00", "2026-12-04 24:00:00",
            "2026-12-04 10:00:60", " 2026-12-04 10:00:00 ", "2026-12-04  10:00:00", "\uff12\uff10\uff12\uff16-12-04 10:00:00",
            "6", "-61", " 7 ", "1_000", "+5", "2437000", "5180", "2412.5", "38.110494", "0", "0.0", "nan", "1e3",
            "[WPA2-PSK-CCMP][ESS]", "WIFI", "BLE", "\r", "a\rb", "\x00", "é",
        ]
    ),
    st.text(st.sampled_from('0123456789-:. ,"a\\\r'), max_size=8),
)  # fmt: skip


GOOD = {
    "MAC": ["AA:BB:CC:DD:EE:01", "aa:bb:cc:dd:ee:02"],
    "SSID": ["", "Home", "Caf\\303\\251 \\054 & <x>", '"a,b ""c"""', " spaced "],
    "AuthMode": ["[WPA2-PSK-CCMP][ESS]", "[ESS]", ""],
    "FirstSeen": ["2026-12-04 10:00:00", "2026-1-4 1:2:3", "1970-01-01 00:00:00", ""],
    "Channel": ["6", "36", ""],
    "Frequency": ["2437000", "5180", "2412.5", ""],
    "RSSI": ["-61", "-90", ""],
    "CurrentLatitude": ["38.110494", "0.000000", "-33.9", ""],
    "CurrentLongitude": ["-122.626897", "0.000000", "151.2", ""],
    "AltitudeMeters": ["53.500000", "0", ""],
    "AccuracyMeters": ["5", "12.5", ""],
    "RCOIs": ["", "506F9A"],
    "MfgrId": ["", "76"],
    "Type": ["WIFI", "BLE", "BT"],
    "Extra": ["x", ""],
}


@st.composite
def lines(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A layout and a row for it: mostly fields of their column's kind, one in about
    ten anything, sometimes a field short (Kismet's 1.6 WiFi rows) or long."""
    layout = draw(st.sampled_from(sorted(HEADERS)))
    columns = HEADERS[layout].split(",")
    count = len(columns) + draw(st.sampled_from([0, 0, 0, 0, -1, -2, -3, 1]))
    fields = []
    for n in range(max(1, count)):
        good = GOOD.get(columns[n] if n < len(columns) else "Extra", ["x"])
        if draw(st.integers(0, 9)) == 0:
            fields.append(draw(field_text))
        else:
            fields.append(draw(st.sampled_from(good)))
    return layout, fields


@settings(max_examples=int(os.environ.get("WIREWAY_HYPOTHESIS_EXAMPLES", "300")), deadline=None)
@given(
    st.one_of(
        lines(), st.tuples(st.sampled_from(sorted(HEADERS)), st.lists(field_text, min_size=1, max_size=15))
    ),
    st.booleans(),
)
def test_rows_read_as_the_csv_module_and_strptime_read_them(
    row: tuple[str, list[str]], keep_unfixed: bool
) -> None:
    """Quotes, commas, carriage returns, octal escapes, odd times and numbers: the
    same value, the same skip, or the same error."""
    layout, fields = row
    header = HEADERS[layout]
    line = ",".join(fields)
    c = codec(keep_unfixed=keep_unfixed)
    c.decode_line(header.encode())
    record = c.decode_line(line.encode(), "f line 2")
    if line.strip() == "":
        assert record is None  # a blank line holds no record
        return
    want = reference_row(header.split(","), line, keep_unfixed)
    if record is None:
        got: Any = None
    elif record.error is not None:
        got = ("error", record.error.removeprefix("f line 2: "))
    else:
        got = {k: v for k, v in record.value.items() if k != "log"}
    assert same_nan(got) == same_nan(want)  # "nan" reads as NaN both ways, never equal to itself
    event("row" if isinstance(want, dict) else "skipped" if want is None else want[1].split(":")[0])


def same_nan(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in value.items()}
    return value
