"""The gpsd input against Debian's real gpsd, fed an NMEA track the tests ship (through
gpsd's own `tcp://` source, served by the test): reports become messages, fixes reach
the position board, and gpsd going away, coming back or staying silent makes the input
down and up again without anything raised."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gpsd_feed import TRACK, GpsdServer, NmeaSource, track

from conftest import DATA, free_port, wireway
from support import base_url, engine_from, eventually, written_lines
from wireway.connectors.gpsd.input import GpsdInput, sky_payload, tpv_payload
from wireway.processors.positions import Positions
from wireway.runtime.engine import Engine

TRANSCRIPT = DATA / "gpsd_3.22_session_transcript.txt"
LAST = "2026-11-20T10:01:02.000Z"  # the time of the shipped track's last fix


def pattern(address: str, out: Path, extra: str = "") -> str:
    return f"""
pattern: {{name: gpsd-test}}
interfaces:
  input:
    - {{type: gpsd, name: kit-gps, address: "{address}"{extra}}}
  output:
    - {{type: file, address: "{out}"}}
"""


def lines_of(path: Path) -> list[dict[str, Any]]:
    return written_lines(path)


def of_type(path: Path, kind: str) -> list[dict[str, Any]]:
    return [m["payload"] for m in lines_of(path) if m["messageType"] == kind]


def gps_input(engine: Engine) -> GpsdInput:
    found = engine.runners[0].inputs[0]
    assert isinstance(found, GpsdInput)
    return found


@pytest.fixture
def source() -> Iterator[NmeaSource]:
    src = NmeaSource()
    yield src
    src.close()


@pytest.fixture
def gpsd(source: NmeaSource) -> Iterator[GpsdServer]:
    server = GpsdServer(source)
    server.start()
    yield server
    server.stop()


async def watching(engine: Engine) -> None:
    """Until the input has sent its WATCH (gpsd only reports to watchers)."""
    await eventually(lambda: gps_input(engine).connected)
    await asyncio.sleep(0.2)  # gpsd reads the WATCH


async def send(source: NmeaSource, data: bytes) -> None:
    await asyncio.to_thread(source.send, data, 0.002, 5)


def test_payloads_of_a_real_session() -> None:
    """TPV and SKY lines of a recorded gpsd 3.22 session become the documented payloads."""
    reports = [json.loads(x) for x in TRANSCRIPT.read_text().splitlines() if x.startswith("{")]
    tpv = next(r for r in reports if r["class"] == "TPV")
    sky = next(r for r in reports if r["class"] == "SKY")
    assert tpv_payload(tpv) == {
        "device": "tcp://127.0.0.1:29500",
        "mode": 3,
        "fix": "3d",
        "time": "2020-07-11T22:37:46.000Z",
        "lat": 38.110494333,
        "lon": -122.626897333,
        "alt_m": 53.5,
        "alt_hae_m": 53.5,
        "alt_msl_m": 83.0,
        "speed_mps": 0.031,
        "track_deg": None,  # absent in that report: unknown
        "climb_mps": -0.1,
        "eph_m": 2.565,
        "epv_m": 3.0,
    }
    assert sky_payload(sky) == {
        "device": "tcp://127.0.0.1:29500",
        "time": None,
        "satellites_used": 15,
        "satellites_seen": 26,
        "hdop": 0.56,
        "vdop": 0.88,
        "pdop": 1.04,
    }
    # an older gpsd: `alt` only, and no uSat/nSat but the satellite list
    old = tpv_payload({"class": "TPV", "mode": 2, "lat": 1.0, "lon": 2.0, "alt": 7.5})
    assert (old["fix"], old["alt_m"], old["alt_hae_m"], old["alt_msl_m"]) == ("2d", 7.5, None, 7.5)
    listed = sky_payload({"class": "SKY", "satellites": [{"used": True}, {"used": False}]})
    assert (listed["satellites_used"], listed["satellites_seen"]) == (1, 2)


async def test_track_becomes_messages_and_fixes(tmp_path: Path, source: NmeaSource, gpsd: GpsdServer) -> None:
    """The shipped track (3 s without a fix, then 60 fixes) gives `tpv` and `sky`
    messages; "no fix" is a state, not down; the last fix is on the position board."""
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(gpsd.address, out)) as engine:
        inp = gps_input(engine)
        await watching(engine)
        lines = TRACK.read_bytes().splitlines(keepends=True)
        await send(source, b"".join(lines[:15]))  # the first 3 s: no fix
        await eventually(lambda: any(p["fix"] == "no fix" for p in of_type(out, "tpv")))
        assert inp.state == "no fix"
        assert inp.health() == {"kit-gps": "up"}
        board = engine.service(Positions)
        assert board is not None
        assert board.latest("kit-gps") is None
        await send(source, b"".join(lines[15:]))
        # gpsd reports after the GGA and again after the RMC (with speed and track)
        await eventually(lambda: any(p["time"] == LAST and p["track_deg"] for p in of_type(out, "tpv")))
        last = [p for p in of_type(out, "tpv") if p["time"] == LAST][-1]
        assert last["fix"] == "3d"
        assert last["lat"] == pytest.approx(51.4778 + 59e-5)
        assert last["lon"] == pytest.approx(-0.0014 + 59 * 1.5e-5)
        assert last["alt_msl_m"] == pytest.approx(45.7)
        assert last["alt_m"] == pytest.approx(45.7 + 47.0)  # above the ellipsoid: MSL + geoid separation
        assert 1.0 < last["speed_mps"] < 2.0  # 2.7 knots in the RMC (gpsd also derives it from positions)
        assert 0 <= last["track_deg"] < 360
        assert last["device"] == f"tcp://127.0.0.1:{source.port}"
        sky = of_type(out, "sky")[-1]
        assert (sky["satellites_used"], sky["satellites_seen"], sky["hdop"]) == (8, 8, 0.9)
        await eventually(lambda: inp.state == "running")
        fix = board.latest("kit-gps")
        assert fix is not None
        assert fix.time == LAST
        assert (fix.lat, fix.lon) == (pytest.approx(last["lat"]), pytest.approx(last["lon"]))
        assert fix.alt == pytest.approx(last["alt_m"])
        assert board.latest() == fix  # the newest of any source
        assert {m["source"] for m in lines_of(out)} == {"kit-gps"}


async def test_a_thousand_fixes(tmp_path: Path, source: NmeaSource, gpsd: GpsdServer) -> None:
    """1,000 seconds of fixes through gpsd: a TPV with a fix for every one of them, in
    order, and the board holds the last."""
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(gpsd.address, out, ", reports: [tpv]")) as engine:
        await watching(engine)
        await asyncio.to_thread(source.send, track(1000), 0.001, 8)

        def seconds_seen() -> list[str]:
            tpv = of_type(out, "tpv")
            return list(dict.fromkeys(p["time"] for p in tpv if p["fix"] != "no fix" and p["time"]))

        await eventually(lambda: len(seconds_seen()) >= 1000, timeout=30)
        times = seconds_seen()
        assert times == sorted(times)
        assert times[-1] == "2026-11-20T10:16:39.000Z"
        board = engine.service(Positions)
        assert board is not None
        fix = board.latest("kit-gps")
        assert fix is not None
        assert fix.time == times[-1]


async def test_a_selection_of_report_classes(tmp_path: Path, source: NmeaSource, gpsd: GpsdServer) -> None:
    """`reports: [tpv]` keeps TPV only (SKY reports still arrive from gpsd, unsent)."""
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(gpsd.address, out, ", reports: [tpv]")) as engine:
        await watching(engine)
        await send(source, TRACK.read_bytes())
        await eventually(lambda: any(p["time"] == LAST for p in of_type(out, "tpv")))
    assert {m["messageType"] for m in lines_of(out)} == {"tpv"}


async def test_gpsd_stopped_and_started_again(tmp_path: Path, source: NmeaSource) -> None:
    """Nothing listens at first (refused: down); gpsd starts (up, fixes); gpsd stops (down,
    nothing raised); gpsd starts again on the same port: WATCH again, fixes again."""
    out = tmp_path / "out.jsonl"
    gpsd = GpsdServer(source, port=free_port())
    text = pattern(gpsd.address, out, ", max_backoff: 0.3")
    try:
        async with engine_from(tmp_path, text) as engine:
            inp = gps_input(engine)
            await asyncio.sleep(0.5)
            assert inp.health() == {"kit-gps": "down"}
            assert inp.state == "down"
            await asyncio.to_thread(gpsd.start)
            await watching(engine)
            assert inp.health() == {"kit-gps": "up"}
            await send(source, track(5, 0))
            await eventually(lambda: len(of_type(out, "tpv")) >= 3)
            await asyncio.to_thread(gpsd.stop)
            await eventually(lambda: inp.health() == {"kit-gps": "down"})
            async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
                body = (await client.get("/health")).json()
            assert body["status"] == "degraded"
            assert body["services"]["kit-gps"] == "down"
            assert engine.status()["patterns"][0]["inputs"][0]["state"] == "down"
            before = len(of_type(out, "tpv"))
            await asyncio.to_thread(gpsd.start)
            await watching(engine)
            await send(source, track(5, 100))
            await eventually(
                lambda: any(p.get("time") == "2026-11-20T10:01:44.000Z" for p in of_type(out, "tpv"))
            )
            assert len(of_type(out, "tpv")) > before
            assert inp.health() == {"kit-gps": "up"}
            assert engine.health()["services"]["kit-gps"] == "up"
            assert all(not t.done() for t in inp.tasks)  # nothing raised in the input's tasks
    finally:
        gpsd.stop()


async def test_silent_gpsd_is_stale(tmp_path: Path, source: NmeaSource, gpsd: GpsdServer) -> None:
    """Connected, but no TPV for `stale_after`: down (`stale`); the next TPV: up again."""
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(gpsd.address, out, ", stale_after: 0.5")) as engine:
        inp = gps_input(engine)
        await watching(engine)
        await eventually(lambda: inp.health() == {"kit-gps": "down"}, timeout=5)
        assert inp.state == "stale"
        assert inp.connected
        await send(source, track(3, 0))
        await eventually(lambda: inp.health() == {"kit-gps": "up"})


@pytest.fixture
async def not_gpsd() -> AsyncIterator[int]:
    """A TCP server that answers with something other than gpsd's banner."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_a_peer_that_is_not_gpsd(tmp_path: Path, not_gpsd: int) -> None:
    """A server that does not send gpsd's VERSION banner: down, retried, nothing raised."""
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(f"127.0.0.1:{not_gpsd}", out, ", max_backoff: 0.2")) as engine:
        inp = gps_input(engine)
        await asyncio.sleep(0.6)
        assert inp.health() == {"kit-gps": "down"}
        assert all(not t.done() for t in inp.tasks)


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ('address: "127.0.0.1"', "address"),
        ("reports: []", "reports"),
        ("reports: [TPV]", "reports"),
        ("stale_after: soon", "stale_after"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, entry: str, key: str) -> None:
    """`wireway check` names the option, on its line, without a traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "pattern: {name: bad}\ninterfaces:\n  input:\n"
        f"    - {{type: gpsd, {entry}}}\n  output:\n    - {{type: stdout}}\n"
    )
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert key in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
