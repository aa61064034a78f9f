"""The kismet input against a fake Kismet (kismet_fake.py, Kismet 2025-09-R1's shapes):
devices by last-seen time with the cursor, a restart that goes on from the stored
cursor, a refused login shown degraded, eventbus events, and health from
/system/timestamp.json."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kismet_fake import START, FakeKismet, access_point, mac_of

from conftest import wireway
from support import engine_from, eventually, written_lines
from wireway.config import load_pattern
from wireway.connectors.kismet.config import DEFAULT_FIELDS
from wireway.connectors.kismet.input import KismetInput
from wireway.runtime.engine import Engine


@pytest.fixture
async def kismet() -> AsyncIterator[FakeKismet]:
    server = FakeKismet()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def lines(path: Path) -> list[Any]:
    return written_lines(path)


def pattern(entry: str, out: Path, payload_only: bool = True) -> str:
    return f"""
pattern: {{name: kit}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: "{out}", payload_only: {str(payload_only).lower()}}}
"""


def entry(kismet: FakeKismet, extra: str = "", auth: str = "api_token: secret-token") -> str:
    return f"{{type: kismet, name: kismet, url: '{kismet.url}', {auth}, interval: 0.05{extra}}}"


def reader(engine: Engine) -> KismetInput:
    (inp,) = engine.runners[0].inputs
    assert isinstance(inp, KismetInput)
    return inp


def asked(kismet: FakeKismet) -> list[str]:
    return [path for path, _, _ in kismet.requests]


async def test_polls_devices_with_the_cursor(tmp_path: Path, kismet: FakeKismet) -> None:
    """The first poll asks for every device, with the default fields list as a form
    variable `json` and the token in the KISMET cookie; each device is a message with
    plain keys; the next polls ask from the newest last_time's second, and a device
    seen again comes again with its new signal."""
    kismet.add(*(access_point(i, last_time=START + i) for i in range(1, 4)))
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(entry(kismet), out)):
        await eventually(lambda: len(lines(out)) >= 3)
        await eventually(lambda: f"/devices/last-time/{START + 2}/devices.json" in asked(kismet))
        kismet.add(access_point(2, last_time=START + 10, rssi=-45))
        await eventually(lambda: len(lines(out)) >= 4)
        await eventually(lambda: f"/devices/last-time/{START + 9}/devices.json" in asked(kismet))
    got = lines(out)
    first = got[0]
    assert first == {
        "key": "4202770D00000000_000000000001",
        "mac": mac_of(1),
        "name": "net-1",
        "commonname": "net-1",
        "type": "Wi-Fi AP",
        "phy": "IEEE802.11",
        "channel": "6",
        "frequency": 2437000,
        "crypt": "WPA2 WPA2-PSK AES-CCMP",
        "manuf": "Unknown",
        "first_time": START - 100,
        "last_time": START + 1,
        "rssi": -60,
        "geopoint": [4.0001, 52.0001],
        "alt": 12.5,
        "fix": 3,
        "ssid": "net-1",
    }
    assert [(v["mac"], v["rssi"]) for v in got[3:]] == [(mac_of(2), -45)]
    path, command, headers = kismet.requests[0]
    assert path == "/devices/last-time/0/devices.json"
    assert command == {"fields": DEFAULT_FIELDS}
    assert headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert "KISMET=secret-token" in headers["cookie"]


async def test_unchanged_device_is_sent_once(tmp_path: Path, kismet: FakeKismet) -> None:
    """The cursor's own second is asked again, but a record already sent unchanged is
    not sent again; after a restart it may come once more, as the same message. A device
    without a location has 0 there, as Kismet sends it."""
    record = access_point(7, last_time=START + 5)
    del record["kismet.device.base.location"]
    kismet.add(record)
    out = tmp_path / "out.jsonl"
    text = pattern(entry(kismet), out, payload_only=False)
    async with engine_from(tmp_path, text):
        await eventually(lambda: len(lines(out)) >= 1)
        await eventually(lambda: len(kismet.requests) >= 5)
    assert len(lines(out)) == 1
    assert asked(kismet)[1:5] == [f"/devices/last-time/{START + 4}/devices.json"] * 4
    async with engine_from(tmp_path, text):
        await eventually(lambda: len(lines(out)) >= 2)
    got = lines(out)
    assert got[0]["payload"]["geopoint"] == 0
    assert got[0]["messageId"] == got[1]["messageId"]
    assert got[0]["payload"] == got[1]["payload"]


async def test_many_devices_in_one_answer(tmp_path: Path, kismet: FakeKismet) -> None:
    """2,500 devices in one answer arrive once each (handed on in parts, the cursor with
    the last), and the next poll asks from the newest second."""
    kismet.add(*(access_point(i, last_time=START + i // 1000) for i in range(2500)))
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(entry(kismet), out)):
        await eventually(lambda: len(lines(out)) >= 2500, timeout=30)
        await eventually(lambda: f"/devices/last-time/{START + 1}/devices.json" in asked(kismet))
    macs = [v["mac"] for v in lines(out)]
    assert len(macs) == len(set(macs)) == 2500


async def test_restart_goes_on_from_the_stored_cursor(tmp_path: Path, kismet: FakeKismet) -> None:
    """A new engine on the same data folder asks from the stored cursor, not from 0."""
    kismet.add(*(access_point(i, last_time=START + i) for i in range(1, 6)))
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(entry(kismet, ", since: 1h"), out)):
        await eventually(lambda: len(lines(out)) >= 5)
    assert asked(kismet)[0] == "/devices/last-time/-3600/devices.json"  # since: relative
    before = len(kismet.requests)
    kismet.add(access_point(9, last_time=START + 20))
    async with engine_from(tmp_path, pattern(entry(kismet, ", since: 1h"), out)):
        await eventually(lambda: any(v["mac"] == mac_of(9) for v in lines(out)))
    assert asked(kismet)[before] == f"/devices/last-time/{START + 4}/devices.json"
    macs = [v["mac"] for v in lines(out)]
    assert sorted(set(macs)) == sorted({mac_of(i) for i in (1, 2, 3, 4, 5, 9)})
    assert macs.count(mac_of(1)) == 1  # nothing older than the cursor's second came twice


async def test_refused_login_is_degraded_then_recovers(tmp_path: Path, kismet: FakeKismet) -> None:
    """A wrong token: 401, the input down and /health degraded, nothing ingested; once
    Kismet accepts it, devices flow and health is up again."""
    kismet.add(access_point(1, last_time=START + 1))
    kismet.token = "another-token"
    out = tmp_path / "out.jsonl"
    text = pattern(entry(kismet, ", max_backoff: 0.2, health_interval: 0.05"), out)
    async with engine_from(tmp_path, text) as engine:
        await eventually(lambda: reader(engine).failures >= 2)
        health = engine.health()
        assert health["services"]["kismet"] == "down"
        assert health["status"] == "degraded"
        assert "refused the login" in (reader(engine).problem or "")
        assert lines(out) == []
        kismet.token = "secret-token"
        await eventually(lambda: len(lines(out)) >= 1)
        await eventually(lambda: engine.health()["services"]["kismet"] == "up")
    assert kismet.refused >= 2


async def test_basic_authentication(tmp_path: Path, kismet: FakeKismet) -> None:
    """username and password go as HTTP basic authentication."""
    kismet.add(access_point(1, last_time=START + 1))
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(entry(kismet, auth="username: kismet, password: pw"), out)):
        await eventually(lambda: len(lines(out)) >= 1)
    assert kismet.requests[0][2]["authorization"] == "Basic a2lzbWV0OnB3"


async def test_custom_fields_and_regex(tmp_path: Path, kismet: FakeKismet) -> None:
    """A custom fields list is sent as given, with last_time added for the cursor; a
    regex filter is passed on."""
    kismet.add(access_point(1, last_time=START + 1))
    out = tmp_path / "out.jsonl"
    extra = (
        ", fields: [kismet.device.base.macaddr, [kismet.device.base.signal/kismet.common.signal.max_signal, peak]]"
        ", regex: [[kismet.device.base.name, '^net-']]"
    )
    async with engine_from(tmp_path, pattern(entry(kismet, extra), out)):
        await eventually(lambda: len(lines(out)) >= 1)
    assert lines(out)[0] == {"kismet.device.base.macaddr": mac_of(1), "peak": -55, "last_time": START + 1}
    assert kismet.requests[0][1]["regex"] == [["kismet.device.base.name", "^net-"]]


async def test_eventbus_events_are_messages(tmp_path: Path, kismet: FakeKismet) -> None:
    """The input subscribes to its topics; each event is a message `{topic, event}` of
    type event; after Kismet drops the socket it connects and subscribes again."""
    out = tmp_path / "out.jsonl"
    extra = ", devices: false, eventbus: [ALERT, MESSAGE, DATASOURCE_ERROR], max_backoff: 0.2"
    alert = {
        "kismet.alert.header": "DEAUTHFLOOD",
        "kismet.alert.class": "DENIAL",
        "kismet.alert.severity": 10,
        "kismet.alert.timestamp": 1764806401.25,
        "kismet.alert.text": "IEEE80211 Access Point BSSID 00:11:22:33:44:55 <&> deauth flood",
        "kismet.alert.transmitter_mac": "00:11:22:33:44:55",
        "kismet.alert.channel": "6",
    }
    message = {
        "kismet.messagebus.message_string": "Detected new 802.11 Wi-Fi access point",
        "kismet.messagebus.message_flags": 2,
        "kismet.messagebus.message_time": 1764806402,
    }
    async with engine_from(tmp_path, pattern(entry(kismet, extra), out, payload_only=False)) as engine:
        await eventually(lambda: kismet.subscribed() == {"ALERT", "MESSAGE", "DATASOURCE_ERROR"})
        await eventually(lambda: engine.health()["services"]["kismet"] == "up")
        assert await kismet.publish("ALERT", alert) == 1
        assert await kismet.publish("MESSAGE", message) == 1
        assert await kismet.publish("TIMESTAMP", {"kismet.system.timestamp.sec": 1}) == 0
        await eventually(lambda: len(lines(out)) >= 2)
        await kismet.drop_sockets()
        await eventually(lambda: reader(engine).bus is not None and reader(engine).bus.failures >= 1)  # type: ignore[union-attr]
        await eventually(lambda: kismet.subscribed() == {"ALERT", "MESSAGE", "DATASOURCE_ERROR"})
        await kismet.publish("DATASOURCE_ERROR", "5FE308BD-0000-0000-0000-00C0CA123456")
        await eventually(lambda: len(lines(out)) >= 3)
    got = lines(out)
    assert [m["payload"] for m in got] == [
        {"topic": "ALERT", "event": alert},
        {"topic": "MESSAGE", "event": message},
        {"topic": "DATASOURCE_ERROR", "event": "5FE308BD-0000-0000-0000-00C0CA123456"},
    ]
    assert {m["messageType"] for m in got} == {"event"}
    assert kismet.requests == []  # devices: false


async def test_eventbus_refused_login_is_down(tmp_path: Path, kismet: FakeKismet) -> None:
    """A websocket handshake Kismet refuses leaves the input down, retried with backoff."""
    kismet.token = "another-token"
    out = tmp_path / "out.jsonl"
    extra = ", devices: false, eventbus: [ALERT], max_backoff: 0.2"
    async with engine_from(tmp_path, pattern(entry(kismet, extra), out)) as engine:
        await eventually(lambda: reader(engine).bus is not None and reader(engine).bus.failures >= 2)  # type: ignore[union-attr]
        assert engine.health()["services"]["kismet"] == "down"
        kismet.token = "secret-token"
        await eventually(lambda: engine.health()["services"]["kismet"] == "up")


async def test_health_follows_the_timestamp_endpoint(tmp_path: Path, kismet: FakeKismet) -> None:
    """/system/timestamp.json answering 503 shows the input down; up again when it answers;
    Kismet's clock is read from it."""
    kismet.now = START + 0.25
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(entry(kismet, ", health_interval: 0.05"), out)) as engine:
        await eventually(lambda: reader(engine).server_time == START + 0.25)
        await eventually(lambda: engine.health()["services"]["kismet"] == "up")
        kismet.timestamp_status = 503
        await eventually(lambda: engine.health()["services"]["kismet"] == "down")
        assert "503" in (reader(engine).unreachable or "")
        kismet.timestamp_status = 200
        await eventually(lambda: engine.health()["services"]["kismet"] == "up")


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ("url: '127.0.0.1:2501'", "url"),
        ("url: 'http://127.0.0.1:2501/devices'", "url"),
        ("api_token: t, username: u", "username"),
        ("fields: [[a, b, c]]", "fields[0]"),
        ("eventbus: [alert]", "eventbus[0]"),
        ("devices: false", "devices"),
        ("interval: soon", "interval"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, options: str, key: str) -> None:
    """A wrong option is a `wireway check` error at its key, without a traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(pattern(f"{{type: kismet, {options}}}", tmp_path / "out.jsonl"))
    pattern_, errors = load_pattern(path)
    assert pattern_ is None
    assert any(key in str(e) and "bad.yaml:5" in str(e) for e in errors), [str(e) for e in errors]
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr


async def test_kismet_to_track_sends_a_device_when_it_changes(tmp_path: Path, kismet: FakeKismet) -> None:
    """kismet -> track -> file: access points beaconing every poll (last_time moving on)
    are written once each; one that moves 100 m is written again."""
    kismet.add(*(access_point(i, last_time=START) for i in range(1, 4)))
    out = tmp_path / "out.jsonl"
    text = pattern(entry(kismet), out) + (
        "processors:\n"
        "  - track: {key: payload.mac, lat: 'payload.geopoint[1]', lon: 'payload.geopoint[0]',"
        " rssi: payload.rssi, min_move_m: 25, refresh_after: 600}\n"
    )

    def beacon(second: int, moved: bool = False) -> None:
        for i in range(1, 4):
            record = access_point(i, last_time=START + second)
            if moved and i == 1:
                lon, lat = record["kismet.device.base.location"]["kismet.common.location.last"][
                    "kismet.common.location.geopoint"
                ]
                record["kismet.device.base.location"]["kismet.common.location.last"][
                    "kismet.common.location.geopoint"
                ] = [lon, lat + 0.0009]  # about 100 m north
            kismet.add(record)

    async with engine_from(tmp_path, text):
        await eventually(lambda: len(lines(out)) >= 3)
        for second in range(1, 6):
            beacon(second)
            await eventually(
                lambda s=second: f"/devices/last-time/{START + s - 1}/devices.json" in asked(kismet)
            )
        assert len(lines(out)) == 3
        beacon(6, moved=True)
        await eventually(lambda: len(lines(out)) >= 4)
    got = lines(out)
    assert [v["mac"] for v in got] == [mac_of(1), mac_of(2), mac_of(3), mac_of(1)]
    assert got[3]["geopoint"][1] == pytest.approx(52.0001 + 0.0009)
