"""The `cot` format: real ATAK, WigleToTAK and pytak events in, escaped XML and TAK
protocol v1 out (read back by takproto, an independent parser)."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import msgspec
import pytest
import takproto
from hypothesis import event, given, settings
from hypothesis import strategies as st

from wireway import registry
from wireway.envelope import Message
from wireway.formats.codec import Codec
from wireway.formats.cot_format import CotCodec, cot_time

DATA = Path(__file__).parent / "data"
RFC3339_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def codec(**options: Any) -> Codec:
    spec = registry.lookup("format", "cot")
    assert spec is not None
    codec: Codec = spec.cls(msgspec.convert(options, spec.config))
    return codec


def msg(payload: Any) -> Message:
    return Message("01J0000000000000000000000A", "2026-06-01T12:00:00Z", payload)


def decode_one(data: bytes, **options: Any) -> Any:
    (record,) = codec(**options).decode(data)
    assert record.error is None, record.error
    return record.value


def test_an_atak_marker() -> None:
    event = decode_one((DATA / "cot_atak_marker_spot_b-m-p-s-m.xml").read_bytes())
    assert event["uid"] == "9405e320-9356-41c4-8449-f46990aa17f8"
    assert event["type"] == "b-m-p-s-m"
    assert event["how"] == "h-g-i-g-o"
    assert event["point"]["lat"] == 38.85606343062312
    assert event["point"]["hae"] == 9999999.0
    assert event["detail"]["contact"] == {"@callsign": "R 1"}
    assert event["protocol"] == "xml"


def test_wigletotak_output_with_its_leading_whitespace() -> None:
    text = (DATA / "cot_wigletotak_rendered.xml").read_bytes()
    datagram = text[text.index(b"-->") + 3 :]
    event = decode_one(datagram)
    assert event["uid"] == "AA:BB:CC:DD:EE:FF-2024-05-01 12:00:00"
    assert event["detail"]["contact"]["@callsign"] == "HomeNet"
    assert event["detail"]["color"] == {"@argb": "-65281"}


def test_pytak_datagrams() -> None:
    capture = (DATA / "pytak_7.6.1_loopback_capture.txt").read_text()
    events = [block.split("\n", 1)[1].strip() for block in capture.split("===== ")[1:]]
    decoded = [decode_one(e.encode()) for e in events]
    assert [e["uid"] for e in decoded[:2]] == ["takPing", "hub-test-1"]
    assert decoded[1]["point"] == {"lat": 47.1234, "lon": 8.7654, "hae": 420.0, "ce": 10.0, "le": 10.0}


@pytest.mark.parametrize(
    "doc",
    [
        b'<!DOCTYPE e [<!ENTITY a "xxxx"><!ENTITY b "&a;&a;&a;&a;">]><event uid="&b;"/>',
        b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><event uid="&x;"/>',
    ],
)
def test_entities_are_refused(doc: bytes) -> None:
    (record,) = codec().decode(doc)
    assert record.value is None
    assert record.error is not None
    assert "refused XML" in record.error


def test_not_an_event_is_an_error() -> None:
    (record,) = codec().decode(b"<foo/>", where="datagram")
    assert record.error == "datagram: not a CoT event: <foo>"


ROW = {
    "mac": "AA:BB:CC:DD:EE:01",
    "ssid": "Caf\u00e9 & <Guest> \"5G\" 'x'",
    "lat": 38.1104941234567,
    "lon": -122.6268971234567,
    "accuracy_m": 12.5,
    "rssi": -61,
}
MAPPING = {
    "uid": '"wifi-" + payload.mac',
    "callsign": "payload.ssid",
    "ce": "payload.accuracy_m",
    "remarks": '"RSSI: " + string(payload.rssi)',
    "color": "-65281",
}


def test_encoding_from_a_cel_mapping_escapes_and_keeps_precision() -> None:
    data = codec(set=MAPPING).encode(msg(ROW))
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')
    event = decode_one(data)
    assert event["uid"] == "wifi-AA:BB:CC:DD:EE:01"
    assert event["type"] == "a-u-G"
    assert event["how"] == "m-g"
    assert event["detail"]["contact"]["@callsign"] == ROW["ssid"]
    assert event["detail"]["remarks"] == "RSSI: -61"
    assert event["detail"]["color"] == {"@argb": "-65281"}
    assert event["point"] == {
        "lat": ROW["lat"],
        "lon": ROW["lon"],
        "hae": 9999999.0,
        "ce": 12.5,
        "le": 9999999.0,
    }
    for key in ("time", "start", "stale"):
        assert RFC3339_MS_Z.match(event[key]), event[key]
    # an independent parser reads it too
    parsed = takproto.parse_proto(
        bytearray(takproto.xml2proto(data[data.index(b"<event") :], takproto.TAKProtoVer.MESH))
    )
    assert parsed.cotEvent.uid == "wifi-AA:BB:CC:DD:EE:01"


def test_stale_follows_start() -> None:
    event = decode_one(
        codec(stale_seconds=120).encode(
            msg({"uid": "u", "lat": 1, "lon": 2, "start": "2026-06-01T12:00:00Z"})
        )
    )
    assert event["start"] == "2026-06-01T12:00:00.000Z"
    assert event["stale"] == "2026-06-01T12:02:00.000Z"


@pytest.mark.parametrize("protocol", ["mesh", "stream"])
def test_tak_protocol_v1_round_trip(protocol: str) -> None:
    data = codec(set=MAPPING, protocol=protocol).encode(msg(ROW))
    assert data[:3] == b"\xbf\x01\xbf" if protocol == "mesh" else data[:1] == b"\xbf"
    event = decode_one(data)
    assert event["protocol"] == protocol
    assert event["uid"] == "wifi-AA:BB:CC:DD:EE:01"
    assert event["point"]["lat"] == ROW["lat"]
    assert event["detail"]["contact"]["@callsign"] == ROW["ssid"]


def test_a_decoded_event_is_written_back_the_same() -> None:
    original = decode_one((DATA / "cot_atak_marker_spot_b-m-p-s-m.xml").read_bytes())
    again = decode_one(codec().encode(msg(original)))
    for key in ("uid", "type", "how", "point"):
        assert again[key] == original[key]
    assert again["detail"]["contact"] == original["detail"]["contact"]


def test_a_message_without_uid_or_position_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="uid"):
        codec().encode(msg({"lat": 1, "lon": 2}))
    with pytest.raises(ValueError, match="lat"):
        codec().encode(msg({"uid": "x"}))


def test_options_are_checked() -> None:
    spec = registry.lookup("format", "cot")
    assert spec is not None
    with pytest.raises(msgspec.ValidationError, match="unknown CoT field `colour`"):
        msgspec.convert({"set": {"colour": "1"}}, spec.config)
    with pytest.raises(msgspec.ValidationError, match=r"set\.uid"):
        msgspec.convert({"set": {"uid": "payload.("}}, spec.config)


@given(st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=40))
def test_any_ssid_comes_back_unchanged(ssid: str) -> None:
    data = codec(set={"uid": "payload.mac", "callsign": "payload.ssid"}).encode(msg({**ROW, "ssid": ssid}))
    assert decode_one(data)["detail"]["contact"]["@callsign"] == ssid


def test_characters_xml_cannot_carry_are_replaced_not_fatal() -> None:
    """A control byte in an SSID (Kismet's \\001) still gives a valid event."""
    data = codec(set={"uid": "payload.mac", "callsign": "payload.ssid"}).encode(
        msg({**ROW, "ssid": "a\x01b\x00c"})
    )
    assert decode_one(data)["detail"]["contact"]["@callsign"] == "a\ufffdb\ufffdc"


# ---- the text builder against ElementTree ----------------------------------------------
HOSTILE = ["&", "<", ">", '"', "'", "\r\n\t", "\x00\x01", "\ud800", "]]>", "é 漢 🛰", " ", "&amp;", ""]
hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=12),
    st.lists(st.sampled_from(HOSTILE), max_size=4).map("".join),
)
scalars = st.one_of(
    hostile_text,
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1.5", "-0", "1e3", "nan", "inf", "x", ""]),
)
names = st.sampled_from(["shape", "ellipse", "link", "a.b", "x-y", "ns:tag", "contact", "remarks", "track"])
attribute_keys = st.sampled_from(["@major", "@angle", "@{urn:x}a", "@a b", "@callsign", "#text"])
details = st.recursive(
    scalars,
    lambda inner: st.dictionaries(
        st.one_of(names, attribute_keys), inner | st.lists(inner, max_size=2), max_size=3
    ),
    max_leaves=6,
)
FIELDS_SET = ["uid", "type", "how", "time", "start", "stale", "lat", "lon", "hae", "ce", "le", "callsign",
              "remarks", "color", "group_name", "group_role", "course", "speed", "detail"]  # fmt: skip


NUMERIC = {"lat", "lon", "hae", "ce", "le", "course", "speed", "color"}
numbers = st.one_of(st.floats(-1e6, 1e6), st.integers(-(2**31), 2**31))
times = st.sampled_from([None, "2026-06-01T12:00:00Z", "2026-06-01T12:00:00.1234+02:00", 1.7e9, 0])


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, Any]]:
    """A mapping and a payload that mostly make an event; one field in about twenty
    is missing or of a kind the field cannot take."""
    mapped = draw(st.lists(st.sampled_from(FIELDS_SET), unique=True, max_size=len(FIELDS_SET)))
    mapping = {key: f"payload.f_{key}" for key in mapped}
    if "uid" in mapping and draw(st.booleans()):
        mapping["uid"] = '"wifi-" + payload.f_uid'
    payload: dict[str, Any] = {}

    def value(key: str) -> Any:
        if draw(st.integers(0, 19)) == 0:
            return draw(scalars | st.just(...))  # ... : left out
        if key == "detail":
            return draw(details)
        if key in ("time", "start", "stale"):
            return draw(times)
        if key in NUMERIC:
            return draw(numbers | st.none()) if key not in ("lat", "lon") else draw(numbers)
        if key == "uid":
            return draw(hostile_text.filter(bool))
        return draw(hostile_text | st.none())

    for key in mapped:
        got = value(key)
        if got is not ...:
            payload[f"f_{key}"] = got
    # a payload of the decoded shape gives the fields the mapping leaves out
    for key in ("uid", "type", "lat", "lon", "detail"):
        if key not in mapping and draw(st.integers(0, 3)) > 0:
            got = value(key)
            if got is not ...:
                payload[key] = got
    if draw(st.booleans()):
        point = {k: value(k) for k in draw(st.lists(st.sampled_from(["lat", "lon", "hae", "ce", "le"])))}
        payload["point"] = {k: v for k, v in point.items() if v is not ...}
    return mapping, payload


def outcome(build: Any) -> Any:
    try:
        return build()
    except Exception as exc:  # noqa: BLE001  (the same error, whichever it is)
        return (type(exc).__name__, str(exc))


@settings(max_examples=int(os.environ.get("WIREWAY_HYPOTHESIS_EXAMPLES", "500")), deadline=None)
@given(cases(), st.sampled_from([1.7e9, 1764843200.9999996, 0.0005]))
def test_the_text_builder_writes_what_elementtree_writes(
    case: tuple[dict[str, str], dict[str, Any]], now: float
) -> None:
    """Byte for byte (or the same error) for any mapping and payload: hostile
    strings, numbers that are not, details with attributes, lists and names ElementTree
    declares a namespace for."""
    mapping, payload = case
    cot = codec(set=mapping)
    assert isinstance(cot, CotCodec)
    cot.clock = lambda: now
    message = msg(payload)
    want = outcome(lambda: ET.tostring(cot.element(message), encoding="utf-8", xml_declaration=False))
    got = outcome(lambda: cot.xml(message))
    assert got == want
    event(f"refused: {want[0]}" if isinstance(want, tuple) else "written")
    if isinstance(want, bytes):
        event("detail from the mapping" if b"<detail />" not in want else "empty detail")
        event("namespace declared" if b"xmlns" in want else "no namespace")


def test_the_text_builder_takes_the_kits_mapping() -> None:
    """The field kit's mapping, hostile SSID included, as ElementTree writes it."""
    mapping = {
        "uid": '"wifi-" + payload.mac',
        "type": "payload.tak.type",
        "how": '"m-g"',
        "lat": "payload.lat",
        "lon": "payload.lon",
        "hae": "payload.alt_m",
        "ce": "payload.accuracy_m",
        "callsign": "payload.tak.callsign",
        "remarks": "payload.tak.remarks",
        "color": "payload.tak.color",
        "detail": "payload.tak.detail",
    }
    cot = codec(set=mapping)
    assert isinstance(cot, CotCodec)
    cot.clock = lambda: 1.7e9
    ssid = "a&b<c>\"d'e\r\n\x01"
    for detail in ({}, {"shape": {"ellipse": {"@major": 40.0, "@minor": 32.0, "@angle": 7}}}):
        tak = {
            "type": "a-u-G",
            "callsign": ssid,
            "remarks": f"SSID {ssid}",
            "color": -65281,
            "detail": detail,
        }
        message = msg({**ROW, "alt_m": 53.5, "tak": tak})
        want = ET.tostring(cot.element(message), encoding="utf-8", xml_declaration=False)
        assert cot.xml(message) == want
        assert decode_one(cot.encode(message))["detail"]["contact"]["@callsign"] == "a&b<c>\"d'e\r\n\ufffd"


@given(
    st.one_of(
        st.floats(0, 253402300799.999),
        st.integers(0, 2**34).map(lambda s: s + 0.9995),
        st.integers(0, 2**34).map(lambda s: s + 0.0005),
        st.integers(0, 2**34).map(lambda s: s + 0.9999995),
        st.integers(0, 2**34).map(lambda s: s + 0.0000005),
        st.sampled_from([0.0, 1764843200.9999996, 1764843200.9999995, 253402300799.9999995, 1.5e-7]),
    )
)
def test_times_are_written_as_datetime_writes_them(seconds: float) -> None:
    """Rounded to microseconds half to even, then cut to milliseconds, as CPython does."""
    from datetime import UTC, datetime

    try:
        want = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        want = None
    try:
        got = cot_time(seconds)
    except ValueError:
        got = None
    assert got == want
