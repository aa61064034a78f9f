"""The registered formats: csv, text, binary, msgpack, xml (json and jsonl in test_formats.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import wireway
from test_envelope import json_values
from wireway import registry
from wireway.envelope import Message
from wireway.formats.codec import Codec


def codec(name: str, **options: Any) -> Codec:
    spec = registry.lookup("format", name)
    assert spec is not None, name
    made: Codec = spec.cls(msgspec.convert(options, spec.config)) if options else spec.cls(None)
    return made


def msg(payload: Any) -> Message:
    return Message("01J0000000000000000000000A", "2026-01-01T00:00:00Z", payload)


def test_every_format_is_registered() -> None:
    assert set(registry.names("format")) >= {"json", "jsonl", "text", "csv", "binary", "msgpack", "xml"}


# ---- csv ----------------------------------------------------------------------------


def test_csv_header_maps_by_name_and_types_apply() -> None:
    c = codec("csv", types={"rssi": "int", "lat": "float", "ok": "bool"})
    rows = c.decode(b"mac,rssi,lat,ok\naa:bb,-70,51.5,yes\n\ncc,-60,,0\n")
    assert [r.value for r in rows] == [
        {"mac": "aa:bb", "rssi": -70, "lat": 51.5, "ok": True},
        {"mac": "cc", "rssi": -60, "lat": None, "ok": False},
    ]
    assert all(r.error is None for r in rows)


def test_csv_rfc4180_quoting_in_a_whole_unit() -> None:
    rows = codec("csv").decode(b'a,b\n"x, with comma","line1\nline2"\n"say ""hi""",2\n')
    assert [r.value for r in rows] == [
        {"a": "x, with comma", "b": "line1\nline2"},
        {"a": 'say "hi"', "b": "2"},
    ]


def test_csv_wrong_field_counts_are_errors_with_their_line_unless_padded() -> None:
    rows = codec("csv").decode(b"a,b,c\n1,2,3\n1,2\n1,2,3,4\n", where="f.csv")
    assert rows[0].error is None
    assert rows[1].error == "f.csv line 3: 2 fields, expected 3"
    assert rows[2].error == "f.csv line 4: 4 fields, expected 3"
    padded = codec("csv", short_rows="pad").decode(b"a,b,c\n1,2\n")
    assert padded[0].value == {"a": "1", "b": "2", "c": ""}


def test_csv_line_by_line_keeps_the_header_of_its_stream() -> None:
    c = codec("csv", columns=["x", "y"], types={"y": "int"})
    assert c.decode_line(b"1,2", "line 1") == (({"x": "1", "y": 2}), None, "line 1")
    bad = c.decode_line(b"1,zz", "line 2")
    assert bad is not None
    assert bad.error is not None
    assert "column y" in bad.error
    skipping = codec("csv", skip_lines=1)
    assert skipping.decode_line(b"WigleWifi-1.4,appRelease=x", "line 1") is None
    assert skipping.decode_line(b"MAC,SSID", "line 2") is None
    assert skipping.decode_line(b"aa,home", "line 3") == ({"MAC": "aa", "SSID": "home"}, None, "line 3")


cells = st.text(
    st.characters(categories=("L", "M", "N", "P", "S", "Zs"), blacklist_characters="\r\x00"), max_size=12
)


@given(st.lists(st.fixed_dictionaries({"a": cells, "b": cells, "c": cells}), min_size=1, max_size=8))
def test_csv_written_rows_read_back(rows: list[dict[str, str]]) -> None:
    writer = codec("csv")
    data = writer.header(msg(rows[0])) + b"".join(writer.encode(msg(r)) + b"\n" for r in rows)
    back = [r.value for r in codec("csv").decode(data)]
    assert back == rows


# ---- text, binary, msgpack ---------------------------------------------------------------


def test_text_lines_and_encoding() -> None:
    c = codec("text")
    assert [r.value for r in c.decode(b"one\n\ntwo\xff\n")] == ["one", "two\ufffd"]
    assert c.encode(msg("hi")) == b"hi"
    assert c.encode(msg({"a": 1})) == b'{"a":1}'
    assert [r.value for r in codec("text", keep_blank=True).decode(b"a\n\nb")] == ["a", "", "b"]


@given(st.binary(max_size=200))
def test_binary_round_trip(data: bytes) -> None:
    c = codec("binary")
    (record,) = c.decode(data)
    assert record.value == base64.b64encode(data).decode()
    assert c.encode(msg(record.value)) == data


def test_binary_refuses_a_payload_that_is_not_base64() -> None:
    with pytest.raises(ValueError, match="base64"):
        codec("binary").encode(msg("not base64!"))


@given(json_values)
def test_msgpack_round_trip(value: Any) -> None:
    c = codec("msgpack")
    (record,) = c.decode(c.encode(msg(value), payload_only=True))
    assert record.error is None
    assert record.value == value


def test_msgpack_malformed_is_an_error() -> None:
    (record,) = codec("msgpack").decode(b"\xc1", where="datagram")
    assert record.error is not None
    assert record.error.startswith("datagram: invalid MessagePack")


# ---- xml ----------------------------------------------------------------------------


def test_xml_reads_attributes_children_and_text() -> None:
    (record,) = codec("xml").decode(
        b'<event uid="a&amp;b" how="m-g"><point lat="51.5"/><detail><t>1</t><t>2</t>note</detail></event>'
    )
    assert record.value == {
        "event": {
            "@uid": "a&b",
            "@how": "m-g",
            "point": {"@lat": "51.5"},
            "detail": {"t": ["1", "2"], "#text": "note"},
        }
    }


@pytest.mark.parametrize(
    "doc",
    [
        b'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>',
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    ],
)
def test_xml_entities_are_refused(doc: bytes) -> None:
    (record,) = codec("xml").decode(doc)
    assert record.value is None
    assert record.error is not None
    assert record.error.startswith("refused XML")


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30))
def test_xml_escapes_every_value(text: str) -> None:
    c = codec("xml")
    data = c.encode(msg({"event": {"@callsign": text, "remarks": text}}))
    (record,) = c.decode(data)
    value = record.value["event"]
    assert value["@callsign"] == text
    assert value.get("remarks", "") == text.strip()


def test_xml_refuses_a_key_that_is_no_element_name() -> None:
    with pytest.raises(ValueError, match="not an element name"):
        codec("xml").encode(msg({"a b": 1}))


# ---- in a pattern file ----------------------------------------------------------------


def test_a_format_with_options_is_checked_at_its_line(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "pattern: {name: p, version: '1.0'}\n"
        "interfaces:\n"
        "  input:\n"
        "    - type: tcp\n"
        "      address: 127.0.0.1:9999\n"
        "      format: {type: jsonl, extra: 1}\n"
        "  output:\n"
        "    - {type: stdout, format: yaml}\n"
    )
    result = wireway("check", str(f))
    assert result.returncode == 1
    assert "p.yaml:6 interfaces.input[0].format.extra: unknown key" in result.stderr
    assert "extra" in result.stdout + result.stderr
    assert "unknown format `yaml`" in result.stdout + result.stderr
