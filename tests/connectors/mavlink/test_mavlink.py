"""The mavlink input on loopback: pymavlink sends as a vehicle (or MAVProxy's `--out`)
would, to the input listening with `udpin:`; positions are converted, reach the
position board, and the heartbeat watchdog marks the input down and up again."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import wireway
from support import engine_from, eventually, written_lines
from wireway.connectors.mavlink.input import MavlinkInput
from wireway.connectors.mavlink.input import mavutil as load_mavutil
from wireway.processors.positions import Positions
from wireway.runtime.engine import Engine

mavutil = load_mavutil()  # MAVLink 2, as the input reads it

MAV = mavutil.mavlink
LAT, LON = 514778000, -14000  # degE7: Greenwich


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Vehicle:
    """pymavlink sending to the input's port, as system 1 (an autopilot)."""

    def __init__(self, port: int, system: int = 1) -> None:
        self.conn = mavutil.mavlink_connection(
            f"udpout:127.0.0.1:{port}", source_system=system, source_component=1
        )

    def heartbeat(self) -> None:
        self.conn.mav.heartbeat_send(MAV.MAV_TYPE_QUADROTOR, MAV.MAV_AUTOPILOT_ARDUPILOTMEGA, 0, 0, 0)

    def global_position(self, i: int = 0, hdg: int = 9000) -> None:
        self.conn.mav.global_position_int_send(1000 + i, LAT + i, LON + i, 45300, 12500, 150, -20, 5, hdg)

    def gps_raw(
        self, fix_type: int = 3, eph: int = 90, satellites: int = 8, alt_ellipsoid: int = 92300
    ) -> None:
        self.conn.mav.gps_raw_int_send(
            1_795_000_000_000_000, fix_type, LAT, LON, 45300, eph, 65535, 139, 5470, satellites,
            alt_ellipsoid, 1500, 0, 0, 0, 0,
        )  # fmt: skip

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def port() -> int:
    return free_udp_port()


@pytest.fixture
def vehicle(port: int) -> Iterator[Vehicle]:
    v = Vehicle(port)
    yield v
    v.close()


def pattern(port: int, out: Path, extra: str = "") -> str:
    return f"""
pattern: {{name: mavlink-test}}
interfaces:
  input:
    - {{type: mavlink, name: drone, connection: "udpin:127.0.0.1:{port}"{extra}}}
  output:
    - {{type: file, address: "{out}"}}
"""


def lines_of(path: Path) -> list[dict[str, Any]]:
    return written_lines(path)


def of_type(path: Path, kind: str) -> list[dict[str, Any]]:
    return [m["payload"] for m in lines_of(path) if m["messageType"] == kind]


def mav_input(engine: Engine) -> MavlinkInput:
    found = engine.runners[0].inputs[0]
    assert isinstance(found, MavlinkInput)
    return found


async def test_positions_are_converted(tmp_path: Path, port: int, vehicle: Vehicle) -> None:
    """GLOBAL_POSITION_INT and GPS_RAW_INT: degrees, metres, m/s; UINT16_MAX and 255 as
    null; the newest fix on the position board; up once a heartbeat came."""
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(port, out)) as engine:
        inp = mav_input(engine)
        await eventually(lambda: inp.opened)
        assert inp.health() == {"drone": "down"}  # no heartbeat yet
        vehicle.heartbeat()
        vehicle.global_position(hdg=65535)
        vehicle.gps_raw(eph=65535, satellites=255)
        await eventually(lambda: of_type(out, "global_position_int") and of_type(out, "gps_raw_int"))
        await eventually(lambda: inp.state == "running")
        assert inp.health() == {"drone": "up"}
        assert of_type(out, "global_position_int")[0] == {
            "system": 1,
            "component": 1,
            "time_boot_ms": 1000,
            "lat": 51.4778,
            "lon": -0.0014,
            "alt_m": 45.3,
            "alt_msl_m": 45.3,
            "relative_alt_m": 12.5,
            "vx_mps": 1.5,
            "vy_mps": -0.2,
            "vz_mps": 0.05,
            "heading_deg": None,
        }
        raw = of_type(out, "gps_raw_int")[0]
        assert raw == {
            "system": 1,
            "component": 1,
            "time": "2026-11-18T11:06:40.000Z",
            "fix_type": 3,
            "fix": "3d",
            "lat": 51.4778,
            "lon": -0.0014,
            "alt_m": 92.3,
            "alt_hae_m": 92.3,
            "alt_msl_m": 45.3,
            "hdop": None,
            "vdop": None,
            "speed_mps": 1.39,
            "track_deg": 54.7,
            "satellites": None,
            "h_acc_m": 1.5,
            "v_acc_m": None,
        }
        board = engine.service(Positions)
        assert board is not None
        fix = board.latest("drone")
        assert fix is not None
        assert (fix.lat, fix.lon, fix.alt, fix.time) == (51.4778, -0.0014, 92.3, "2026-11-18T11:06:40.000Z")


async def test_no_position_is_not_a_fix(tmp_path: Path, port: int, vehicle: Vehicle) -> None:
    """A GLOBAL_POSITION_INT at 0/0 (before the first fix) and a GPS_RAW_INT without a
    fix are messages, not fixes on the board."""
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(port, out)) as engine:
        inp = mav_input(engine)
        await eventually(lambda: inp.opened)
        vehicle.heartbeat()
        vehicle.conn.mav.global_position_int_send(5, 0, 0, 0, 0, 0, 0, 0, 65535)
        vehicle.gps_raw(fix_type=1, alt_ellipsoid=0)
        await eventually(lambda: of_type(out, "global_position_int") and of_type(out, "gps_raw_int"))
        assert of_type(out, "gps_raw_int")[0]["fix"] == "no fix"
        assert of_type(out, "gps_raw_int")[0]["alt_hae_m"] is None
        board = engine.service(Positions)
        assert board is not None
        assert board.latest("drone") is None


async def test_heartbeat_watchdog(tmp_path: Path, port: int, vehicle: Vehicle) -> None:
    """Heartbeats stop: down (`no heartbeat`), nothing raised; they resume: up."""
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(port, out, ", heartbeat_timeout: 0.5")) as engine:
        inp = mav_input(engine)
        await eventually(lambda: inp.opened)
        vehicle.heartbeat()
        await eventually(lambda: inp.health() == {"drone": "up"})
        await eventually(lambda: inp.health() == {"drone": "down"}, timeout=5)
        await eventually(lambda: inp.state == "no heartbeat")
        assert engine.health()["status"] == "degraded"
        assert engine.health()["services"]["drone"] == "down"
        vehicle.heartbeat()
        await eventually(lambda: inp.health() == {"drone": "up"})
        assert inp.thread is not None
        assert inp.thread.is_alive()


async def test_a_thousand_positions_in_batches(tmp_path: Path, port: int, vehicle: Vehicle) -> None:
    """1,000 positions sent at a modest pace all arrive, handed over in batches, and the
    board holds the last one."""
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(port, out)) as engine:
        inp = mav_input(engine)
        await eventually(lambda: inp.opened)
        vehicle.heartbeat()
        for i in range(1000):
            vehicle.global_position(i)
            if i % 50 == 49:
                await asyncio.sleep(0.005)
        await eventually(lambda: len(of_type(out, "global_position_int")) >= 1000, timeout=20)
        times = sorted(p["time_boot_ms"] for p in of_type(out, "global_position_int"))
        assert times == list(range(1000, 2000))
        board = engine.service(Positions)
        assert board is not None
        fix = board.latest("drone")
        assert fix is not None
        assert fix.lat == pytest.approx((LAT + 999) / 1e7)


async def test_named_values_and_other_messages(tmp_path: Path, port: int, vehicle: Vehicle) -> None:
    """A NAMED_VALUE_FLOAT becomes {name: value}; another message its fields; a system
    other than `system` is left out."""
    out = tmp_path / "out.jsonl"
    extra = ", system: 1, messages: [NAMED_VALUE_FLOAT, ATTITUDE, HEARTBEAT]"
    other = Vehicle(port, system=7)
    try:
        async with engine_from(tmp_path, pattern(port, out, extra)) as engine:
            inp = mav_input(engine)
            await eventually(lambda: inp.opened)
            other.heartbeat()
            vehicle.heartbeat()
            vehicle.conn.mav.named_value_float_send(77, b"batt2_v", 12.5)
            vehicle.conn.mav.attitude_send(88, 0.5, -0.25, 1.0, 0.0, 0.0, 0.0)
            await eventually(lambda: of_type(out, "named_value_float") and of_type(out, "attitude"))
            assert of_type(out, "named_value_float")[0] == {
                "batt2_v": 12.5,
                "system": 1,
                "component": 1,
                "time_boot_ms": 77,
            }
            attitude = of_type(out, "attitude")[0]
            assert (attitude["time_boot_ms"], attitude["roll"], attitude["pitch"]) == (88, 0.5, -0.25)
            await eventually(lambda: of_type(out, "heartbeat"))
            assert {p["system"] for p in of_type(out, "heartbeat")} == {1}
    finally:
        other.close()


async def test_missing_serial_device(tmp_path: Path) -> None:
    """A serial device that is not there: down, tried again, nothing raised."""
    out = tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: mavlink-serial}}
interfaces:
  input:
    - {{type: mavlink, name: drone, connection: "{tmp_path}/ttyACM9", max_backoff: 0.2}}
  output:
    - {{type: file, address: "{out}"}}
"""
    async with engine_from(tmp_path, text) as engine:
        inp = mav_input(engine)
        started = time.monotonic()
        await eventually(lambda: inp.state == "down")
        await asyncio.sleep(0.5)
        assert inp.health() == {"drone": "down"}
        assert inp.thread is not None
        assert inp.thread.is_alive()
        assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ('connection: "udpin:14550"', "connection"),
        ('connection: "ttyUSB0"', "connection"),
        ("messages: []", "messages"),
        ("messages: [gps_raw_int]", "messages"),
        ("heartbeat_timeout: 0", "heartbeat_timeout"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, entry: str, key: str) -> None:
    """`wireway check` names the option, without a traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "pattern: {name: bad}\ninterfaces:\n  input:\n"
        f"    - {{type: mavlink, {entry}}}\n  output:\n    - {{type: stdout}}\n"
    )
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert key in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
