"""The kit's own position (a MAVLink autopilot here, sent with pymavlink on loopback):
rows Kismet logged without a fix get it; without any fix they are no marker."""

from __future__ import annotations

import socket
from pathlib import Path

from kit_support import fieldkit, listening

from support import eventually
from wireway.apps.fieldkit.simulate import Simulator
from wireway.connectors.mavlink.input import mavutil as load_mavutil

mavutil = load_mavutil()
LAT, LON = 514778000, -14000  # degE7


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_rows_without_a_fix_take_the_kits_position(tmp_path: Path) -> None:
    port = free_udp_port()
    sim = Simulator(devices=2, layout="1.6", seed=5)
    fixed, unfixed = sim.devices
    env = {"FIELDKIT_MAVLINK_ENABLED": "true", "FIELDKIT_MAVLINK": f"udpin:127.0.0.1:{port}"}
    async with fieldkit(tmp_path, **env) as kit, listening(kit.port) as tak:
        path = kit.wigle / "Kismet-20261204-12-00-00-1.wiglecsv"
        with path.open("w", encoding="ascii") as f:
            f.write(sim.header())
            # no position anywhere yet: the row is no marker
            unfixed.lat = unfixed.lon = 0.0
            f.write(sim.line(unfixed))
            f.write(sim.line(fixed))
            f.flush()
            await eventually(lambda: len(tak.events) == 1)
            assert tak.events[0].get("uid") == f"wifi-{fixed.mac}"
            vehicle = mavutil.mavlink_connection(
                f"udpout:127.0.0.1:{port}", source_system=1, source_component=1
            )
            try:

                def fix_arrived() -> bool:
                    vehicle.mav.heartbeat_send(2, 3, 0, 0, 0)
                    vehicle.mav.global_position_int_send(1000, LAT, LON, 45300, 12500, 0, 0, 0, 0)
                    return bool((kit.counts()["last_fix"] or {}).get("source") == "mavlink")

                await eventually(fix_arrived, interval=0.1)
            finally:
                vehicle.close()
            f.write(sim.line(unfixed))
            f.flush()
            await eventually(lambda: len(tak.of(f"wifi-{unfixed.mac}")) == 1)
    point = tak.of(f"wifi-{unfixed.mac}")[0].find("point")
    assert point is not None
    assert (float(point.get("lat", 0)), float(point.get("lon", 0))) == (LAT / 1e7, LON / 1e7)
