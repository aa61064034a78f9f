"""Property-based tests of every parser that reads bytes from outside: the sensor reading
validator, the MQTT codec (and its skipping of oversized packets), the wiglecsv and CoT
decoders, and the pattern-file YAML loader.

Each property holds for any input: a parser answers with a value or its own error
(never another exception), and what a writer wrote reads back the same. Every test runs
twice: here with few examples (the file takes seconds), and as a bounded fuzz run with
many more behind the `faults` marker (`make test-faults`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wireway.apps.sensor_ingest import reading
from wireway.config.yamlload import load_document
from wireway.connectors.mqtt import wire
from wireway.connectors.mqtt.skip import Skipper, TooLarge
from wireway.envelope import Message
from wireway.errors import ConfigError
from wireway.formats.cot_format import CotCodec, CotOptions
from wireway.formats.wiglecsv_format import WigleCodec, WigleOptions

QUICK = 60
FUZZ = 2000
NOW = time.time()


def twice(quick: int = QUICK, fuzz: int = FUZZ, **strategies: Any) -> Callable[[Callable[..., None]], Any]:
    """A property as a quick test and a `faults` fuzz run with many more examples; the
    fuzz run is bound as `<name>_fuzz` in the calling module."""

    def wrap(fn: Callable[..., None]) -> Any:
        common = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
        fuzzed = pytest.mark.faults(settings(max_examples=fuzz, **common)(given(**strategies)(fn)))
        globals()[f"{fn.__name__}_fuzz"] = fuzzed
        return settings(max_examples=quick, **common)(given(**strategies)(fn))

    return wrap


# ----- JSON values ---------------------------------------------------------------------
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)


# ----- the sensor reading validator ----------------------------------------------------
def valid_reading() -> st.SearchStrategy[dict[str, Any]]:
    radar = st.fixed_dictionaries(
        {"presence": st.booleans()},
        optional={
            "distance": st.integers(0, 600) | st.floats(0, 600),
            "energy": st.integers(0, 100),
            "has_moving_target": st.booleans(),
        },
    )
    pir = st.fixed_dictionaries({"motion_detected": st.booleans()})
    gas = st.fixed_dictionaries(
        {"gas_concentration": st.floats(0, 1e6)},
        optional={"unit": st.sampled_from(["ppm", "ppb"]), "raw": st.integers(0, 4095)},
    )
    sensors = st.fixed_dictionaries({}, optional={"ld2410": radar, "pir": pir, "mq134": gas}).filter(bool)
    stamp = st.integers(int(NOW) - 10**8, int(NOW)).map(
        lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))
    )
    return st.fixed_dictionaries(
        {
            "device_id": st.from_regex(r"[A-Za-z0-9._:-]{1,100}", fullmatch=True),
            "timestamp": stamp,
            "sensors": sensors,
        }
    )


def mutated(value: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A valid reading with one field replaced by any JSON value."""
    keys = ["device_id", "timestamp", "sensors", *(f"sensors.{k}" for k in value["sensors"])]

    def put(key: str, new: Any) -> Any:
        copy = json.loads(json.dumps(value))
        if key.startswith("sensors."):
            copy["sensors"][key.split(".", 1)[1]] = new
        else:
            copy[key] = new
        return copy

    return st.tuples(st.sampled_from(keys), JSON).map(lambda kv: put(*kv))


@twice(value=valid_reading())
def test_a_valid_reading_passes(value: dict[str, Any]) -> None:
    assert reading.check_reading(value, NOW) == []


@twice(value=JSON | valid_reading().flatmap(mutated))
def test_the_reading_validator_takes_anything_and_its_fast_path_agrees(value: Any) -> None:
    errors = reading.check_reading(value, NOW)
    assert isinstance(errors, list)
    assert all(isinstance(e, str) and ": " in e for e in errors)
    # the fast path says "valid" only when the full check finds nothing
    assert (errors == []) == (reading._errors(value, NOW) == [])


# ----- the MQTT codec ------------------------------------------------------------------
TOPIC = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).map(str.encode)


@twice(data=st.binary(max_size=600), v5=st.booleans(), limit=st.integers(256, 4096))
def test_mqtt_parse_takes_any_bytes(data: bytes, v5: bool, limit: int) -> None:
    try:
        publishes, acks, others, used = wire.parse(data, v5, limit)
    except wire.MalformedPacket:
        return
    assert 0 <= used <= len(data)
    assert all(isinstance(p[0], bytes) and isinstance(p[1], bytes) for p in publishes)
    assert all(0 <= mid < 65536 for _, mid, _ in acks)
    for kind, body in others:  # what the session does with the others: its own errors only
        try:
            if kind == wire.CONNACK:
                wire.connack(body, v5)
            elif kind == wire.SUBACK:
                wire.suback(body, v5)
            else:
                wire.packet_id(body)
        except wire.MalformedPacket:
            pass


@twice(
    packets=st.lists(
        st.tuples(TOPIC, st.binary(max_size=300), st.integers(1, 65535), st.sampled_from([0, 1, 2])),
        min_size=1,
        max_size=8,
    ),
    v5=st.booleans(),
    cuts=st.lists(st.integers(0, 4000), max_size=6),
)
def test_mqtt_publishes_read_back_whatever_the_socket_reads(
    packets: list[tuple[bytes, bytes, int, int]], v5: bool, cuts: list[int]
) -> None:
    stream = b"".join(wire.publish(t, p, mid, q, retain=False, v5=v5) for t, p, mid, q in packets)
    got: list[wire.Publish] = []
    rest = b""
    for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(stream)], strict=True):
        buf = rest + stream[start:end]
        publishes, _, _, used = wire.parse(buf, v5, 1 << 20)
        got += publishes
        rest = buf[used:]
    assert rest == b""
    assert got == [(t, p, mid if q else 0, q) for t, p, mid, q in packets]


@twice(
    topic=TOPIC,
    size=st.integers(300, 5000),
    mid=st.integers(1, 65535),
    qos=st.sampled_from([0, 1, 2]),
    chunk=st.integers(1, 700),
    v5=st.booleans(),
)
def test_an_oversized_publish_is_skipped_in_any_pieces(
    topic: bytes, size: int, mid: int, qos: int, chunk: int, v5: bool
) -> None:
    big = wire.publish(topic, b"x" * size, mid, qos, retain=False, v5=v5)
    after = wire.publish(b"next", b"{}", 9, 1, retain=False, v5=v5)
    stream = big + after
    limit = 256
    first = stream[:chunk]
    for _ in range(8):  # a read too short for the length bytes waits for the next one
        try:
            assert wire.parse(first, v5, limit)[3] == 0
        except wire.OversizedPublish as caught:
            exc = caught
            break
        first = stream[: len(first) + 1]
    else:
        raise AssertionError("the oversized PUBLISH was not noticed at its header")
    skipper = Skipper(exc.first, exc.length, exc.start - exc.pos + exc.length)
    done, rest = skipper.feed(first[exc.start :])
    at = len(first)
    while done is None:
        done, rest = skipper.feed(stream[at : at + chunk])
        at += chunk
    rest += stream[at:]
    assert done[0] == topic
    assert done[2:] == (mid if qos else 0, qos)
    assert isinstance(done[1], TooLarge)
    assert done[1].size == len(big)
    assert wire.parse(rest, v5, limit)[0] == [(b"next", b"{}", 9, 1)]


@twice(n=st.integers(0, 268_435_455))
def test_mqtt_varint_round_trip(n: int) -> None:
    data = wire.varint(n) + b"\x00"
    assert wire._varint_at(data, 0, len(data)) == (n, len(data) - 1)


# ----- wiglecsv --------------------------------------------------------------------------
HEADER = "MAC,SSID,AuthMode,FirstSeen,Channel,RSSI,CurrentLatitude,CurrentLongitude,AltitudeMeters,AccuracyMeters,Type"


@twice(data=st.binary(max_size=400) | st.text(max_size=300).map(lambda t: (HEADER + "\n" + t).encode()))
def test_wiglecsv_takes_any_bytes(data: bytes) -> None:
    for record in WigleCodec(WigleOptions(keep_unfixed=True)).decode(data):
        assert (record.value is None) or (record.error is None) or isinstance(record.value, str)
        if record.error is None:
            assert isinstance(record.value, dict)
            assert record.value["mac"]
        else:
            assert record.error


@twice(
    rows=st.lists(
        st.tuples(
            st.from_regex(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", fullmatch=True),
            st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=32),
            st.integers(1, 165),
            st.integers(-120, 0),
            st.floats(-89, 89).filter(lambda x: abs(x) > 1e-6),
            st.floats(-179, 179).filter(lambda x: abs(x) > 1e-6),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_wiglecsv_rows_read_back(rows: list[tuple[str, str, int, int, float, float]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER.split(","))
    for mac, ssid, channel, rssi, lat, lon in rows:
        writer.writerow([mac, ssid, "[WPA2]", "2025-01-02 03:04:05", channel, rssi, lat, lon, 5, 10, "WIFI"])
    text = "WigleWifi-1.4,appRelease=test,model=m\n" + out.getvalue()
    records = WigleCodec().decode(text.encode())
    assert [r.error for r in records] == [None] * len(rows)
    for record, (mac, ssid, channel, rssi, lat, lon) in zip(records, rows, strict=True):
        value = record.value
        assert (value["mac"], value["channel"], value["rssi"]) == (mac, channel, rssi)
        assert (value["lat"], value["lon"]) == (lat, lon)
        assert value["first_seen"] == "2025-01-02T03:04:05.000Z"
        if "\\" not in ssid and "\r" not in ssid and "\n" not in ssid:
            assert value["ssid"] == ssid


# ----- CoT -------------------------------------------------------------------------------
XMLISH = st.text(
    st.sampled_from(list("<>/=\"' !?[]&;:abcdeventpointdetailuidxmlDOCTYPEENTITY0123.")), max_size=200
)


@twice(
    data=st.binary(max_size=300) | XMLISH.map(str.encode) | st.binary(max_size=200).map(lambda b: b"\xbf" + b)
)
def test_cot_takes_any_bytes(data: bytes) -> None:
    for record in CotCodec().decode(data):
        if record.error is None:
            assert isinstance(record.value, dict)
        else:
            assert record.value is None


@twice(
    uid=st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=40),
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    hae=st.floats(-1000, 10000),
    protocol=st.sampled_from(["xml", "mesh", "stream"]),
)
def test_cot_events_read_back(uid: str, lat: float, lon: float, hae: float, protocol: str) -> None:
    payload = {"uid": uid, "type": "a-f-G", "point": {"lat": lat, "lon": lon, "hae": hae}}
    data = CotCodec(CotOptions(protocol=protocol)).encode(  # type: ignore[arg-type]
        Message("01J0000000000000000000000A", "2026-06-01T12:00:00Z", payload)
    )
    (record,) = CotCodec().decode(data)
    assert record.error is None, record.error
    assert record.value["uid"] == uid
    assert math.isclose(record.value["point"]["lat"], lat, abs_tol=1e-7)
    assert math.isclose(record.value["point"]["lon"], lon, abs_tol=1e-7)


# ----- the pattern-file YAML loader --------------------------------------------------------
@twice(
    text=st.text(max_size=400)
    | XMLISH
    | st.text(st.sampled_from(list("[]{}&*!|>-:? \n\t'\"#%@`ab1")), max_size=300)
)
def test_the_yaml_loader_takes_any_text(text: str) -> None:
    failure: ConfigError | None = None
    errors: list[ConfigError] = []
    try:
        _, errors = load_document("p.yaml", text, {})
    except ConfigError as exc:
        failure = exc
    if failure is not None:
        assert failure.file == "p.yaml"
        assert failure.line >= 1
    assert all(isinstance(e, ConfigError) for e in errors)


KEYS = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=10)
YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(st.characters(categories=("L", "N", "Zs")), max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


@twice(data=st.dictionaries(KEYS, YAML_VALUES, min_size=1, max_size=6), flow=st.booleans())
def test_yaml_documents_read_back_with_a_line_for_every_key(data: dict[str, Any], flow: bool) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True, sort_keys=False)
    document, errors = load_document("p.yaml", text, {})
    assert errors == []
    assert document.data == data
    for key in data:
        assert 1 <= document.line(key) <= text.count("\n") + 1
