"""The `gps` step: the last fix of the engine's position board attached to messages;
end to end with a gpsd input fed by Debian's gpsd and a tcp input in one pattern."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import free_port, wireway
from support import engine_from, eventually
from wireway.envelope import Message, new_message_id
from wireway.observability.metrics import REGISTRY
from wireway.processors.base import EngineView
from wireway.processors.gps import Gps, GpsConfig
from wireway.processors.positions import Positions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors" / "gpsd"))
from gpsd_feed import TRACK, GpsdServer, NmeaSource


async def _publish(messages: list[Message]) -> None:
    return None


def board() -> Positions:
    view = EngineView(
        data_dir=Path("."),
        http_address=("127.0.0.1", 0),
        queue_depth=lambda: 0,
        dlq_depth=lambda: 0,
        publish=_publish,
    )
    return Positions(view)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def step(positions: Positions, **options: Any) -> Gps:
    gps = Gps(msgspec.convert(options, GpsConfig), base_dir=Path("."))
    gps.use_service(positions)
    gps.pattern = "gps-unit"
    return gps


def msg(payload: Any, kind: str = "data") -> Message:
    return Message(message_id=new_message_id(), timestamp="", payload=payload, message_type=kind)


def counted(outcome: str) -> float:
    labels = {"pattern": "gps-unit", "component": "gps", "outcome": outcome}
    return REGISTRY.get_sample_value("wireway_messages_total", labels) or 0.0


@pytest.fixture
def positions() -> Positions:
    found = board()
    found.clock = Clock()
    return found


async def test_fills_a_missing_position_and_puts_the_fix_beside(positions: Positions) -> None:
    """No position, or 0/0: the fix becomes the position; one of its own is kept; the
    fix, its time and its age go beside in `payload.gps`; the message's own payload is
    not changed in place."""
    positions.publish("kit-gps", 51.5, -0.1, 92.3, "2026-11-20T10:00:00.000Z")
    positions.clock.now += 2.5  # type: ignore[attr-defined]
    own = {"ssid": "cafe", "lat": 48.1, "lon": 11.5}
    batch = [msg({"ssid": "a"}), msg({"ssid": "b", "lat": 0, "lon": 0, "alt_m": 0}), msg(own)]
    result = await step(positions).process(batch)
    a, b, c = (m.payload for m in result.passed)
    beside = {
        "lat": 51.5,
        "lon": -0.1,
        "alt": 92.3,
        "time": "2026-11-20T10:00:00.000Z",
        "age_s": 2.5,
        "source": "kit-gps",
    }
    assert a == {"ssid": "a", "lat": 51.5, "lon": -0.1, "alt_m": 92.3, "gps": beside}
    assert b == {"ssid": "b", "lat": 51.5, "lon": -0.1, "alt_m": 92.3, "gps": beside}
    assert c == {**own, "gps": beside}
    assert own == {"ssid": "cafe", "lat": 48.1, "lon": 11.5}
    assert batch[0].payload == {"ssid": "a"}


async def test_target_fields_and_options(positions: Positions) -> None:
    """Nested target paths; `beside: null`; `fill: false`; `when` chooses messages; a
    payload that is not an object passes unchanged."""
    positions.publish("kit-gps", 51.5, -0.1, None, None)
    nested = step(positions, lat="pos.lat", lon="pos.lon", alt="pos.hae", beside=None)
    result = await nested.process([msg({"pos": {"lat": None}}), msg("text")])
    assert result.passed[0].payload == {"pos": {"lat": 51.5, "lon": -0.1}}  # no altitude known
    assert result.passed[1].payload == "text"
    only_beside = step(positions, fill=False, beside="where")
    result = await only_beside.process([msg({"n": 1})])
    assert result.passed[0].payload["where"]["lat"] == 51.5
    assert "lat" not in result.passed[0].payload
    chosen = step(positions, when='messageType != "tpv"')
    result = await chosen.process([msg({"n": 1}, "tpv"), msg({"n": 2})])
    assert "gps" not in result.passed[0].payload
    assert "gps" in result.passed[1].payload


async def test_source_and_newest(positions: Positions) -> None:
    """`source` names the input whose fix is used; without it the newest of any."""
    positions.publish("kit-gps", 1.0, 1.0)
    positions.clock.now += 1  # type: ignore[attr-defined]
    positions.publish("drone", 2.0, 2.0)
    newest = await step(positions).process([msg({})])
    named = await step(positions, source="kit-gps").process([msg({})])
    unknown = await step(positions, source="other").process([msg({})])
    assert newest.passed[0].payload["gps"]["source"] == "drone"
    assert named.passed[0].payload["lat"] == 1.0
    assert unknown.passed[0].payload == {}


async def test_a_stale_fix_or_none_is_not_attached(positions: Positions) -> None:
    """No fix yet, or one older than `max_age`: messages pass unchanged, counted."""
    gps = step(positions, max_age=5)
    no_fix, stale = counted("no_fix"), counted("stale_fix")
    result = await gps.process([msg({"a": 1}), msg({"b": 2})])
    assert [m.payload for m in result.passed] == [{"a": 1}, {"b": 2}]
    assert counted("no_fix") == no_fix + 2
    positions.publish("kit-gps", 51.5, -0.1)
    positions.clock.now += 6  # type: ignore[attr-defined]
    result = await gps.process([msg({"a": 1})])
    assert result.passed[0].payload == {"a": 1}
    assert counted("stale_fix") == stale + 1
    positions.publish("kit-gps", 51.6, -0.1)
    result = await gps.process([msg({"a": 1})])
    assert result.passed[0].payload["lat"] == 51.6


@pytest.mark.parametrize(
    ("step_text", "key"),
    [("{fill: false, beside: null}", "beside"), ("{max_age: 0}", "max_age"), ("{lat: 'a..b'}", "lat")],
)
def test_bad_options_are_named(tmp_path: Path, step_text: str, key: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "pattern: {name: bad}\ninterfaces:\n  input:\n    - {type: tcp, address: '127.0.0.1:7000'}\n"
        f"  output:\n    - {{type: stdout}}\nprocessors:\n  - gps: {step_text}\n"
    )
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert key in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


async def test_end_to_end_with_gpsd_and_tcp(tmp_path: Path) -> None:
    """One pattern: a gpsd input (Debian's gpsd, fed the shipped track) and a tcp input;
    the `gps` step gives the tcp messages the kit's last fix, not the positions themselves."""
    source = NmeaSource()
    gpsd = GpsdServer(source)
    gpsd.start()
    out = tmp_path / "out.jsonl"
    port = free_port()
    text = f"""
pattern: {{name: kit}}
interfaces:
  input:
    - {{type: gpsd, name: kit-gps, address: "{gpsd.address}", reports: [tpv]}}
    - {{type: tcp, name: scans, address: "127.0.0.1:{port}"}}
  output:
    - {{type: file, address: "{out}", payload_only: true, when: 'source == "scans"'}}
processors:
  - gps: {{source: kit-gps, max_age: 60, when: 'source != "kit-gps"'}}
"""
    try:
        async with engine_from(tmp_path, text) as engine:
            board_ = engine.service(Positions)
            assert board_ is not None
            inp = engine.runners[0].inputs[0]
            await eventually(lambda: getattr(inp, "connected", False))
            await asyncio.sleep(0.2)
            await asyncio.to_thread(source.send, TRACK.read_bytes(), 0.002, 5)
            last = "2026-11-20T10:01:02.000Z"
            await eventually(lambda: (f := board_.latest("kit-gps")) is not None and f.time == last)
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b'{"bssid": "AA:BB:CC:DD:EE:01", "rssi": -60}\n')
            writer.write(b'{"bssid": "AA:BB:CC:DD:EE:02", "lat": 48.1, "lon": 11.5}\n')
            await writer.drain()
            writer.close()
            await eventually(lambda: out.exists() and len(out.read_text().splitlines()) >= 2)
    finally:
        gpsd.stop()
        source.close()
    first, second = (json.loads(x) for x in out.read_text().splitlines())
    assert first["lat"] == pytest.approx(51.4778 + 59e-5)
    assert first["lon"] == pytest.approx(-0.0014 + 59 * 1.5e-5)
    assert first["alt_m"] == pytest.approx(92.7)
    assert first["gps"]["time"] == "2026-11-20T10:01:02.000Z"
    assert first["gps"]["source"] == "kit-gps"
    assert 0 <= first["gps"]["age_s"] < 60
    assert (second["lat"], second["lon"]) == (48.1, 11.5)
    assert second["gps"]["lat"] == pytest.approx(first["lat"])
