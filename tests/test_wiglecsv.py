"""The `wiglecsv` format against real Kismet and WiGLE-Android files (tests/data/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
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
