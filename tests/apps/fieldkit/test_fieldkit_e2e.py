"""Simulator rows -> the field kit -> CoT events a TAK client gets on the multicast group."""

from __future__ import annotations

from pathlib import Path

from kit_support import fieldkit, listening

from support import eventually
from wireway.apps.fieldkit.simulate import Simulator, destination


async def test_rows_become_events_that_move_skip_whitelisted_and_colour_blacklisted(tmp_path: Path) -> None:
    sim = Simulator(devices=5, layout="1.6", seed=7)
    walker, hidden, known, flagged, odd = sim.devices
    hidden.ssid = ""
    odd.ssid = 'Café, "Tom" & <Jerry>'
    async with fieldkit(tmp_path) as kit, listening(kit.port) as tak:
        async with kit.client() as api:
            r = await api.post("/add_to_whitelist", json={"mac": known.mac})
            assert r.json() == {"message": f"MAC address {known.mac} added to whitelist"}
            r = await api.post("/add_to_blacklist", json={"mac": flagged.mac, "argb_value": "-65536"})
            assert r.status_code == 200
        path = kit.wigle / "Kismet-20261204-10-00-00-1.wiglecsv"
        with path.open("w", encoding="ascii") as f:
            f.write(sim.header())
            for d in sim.devices:
                f.write(sim.line(d))
            f.flush()
            await eventually(lambda: len({e.get("uid") for e in tak.events}) == 4, timeout=15)
            # the walker moves 200 m and is heard again: a new event at the new point
            walker.lat, walker.lon = destination(walker.lat, walker.lon, 200, 0.5)
            f.write(sim.line(walker))
            f.flush()
            await eventually(lambda: len(tak.of(f"wifi-{walker.mac}")) == 2, timeout=15)
    assert not tak.of(f"wifi-{known.mac}")  # whitelisted: a known device, never sent
    for event in tak.events:
        assert event.get("how") == "m-g"
        assert event.get("type") == "a-u-G"
        assert event.get("time", "").endswith("Z")
        assert event.get("stale", "") > event.get("time", "")
    moved = tak.of(f"wifi-{walker.mac}")[-1].find("point")
    assert moved is not None
    assert float(moved.get("lat", 0)) == round(walker.lat, 6)
    assert float(moved.get("lon", 0)) == round(walker.lon, 6)
    assert float(moved.get("ce", 0)) == 5.0
    colour = tak.of(f"wifi-{flagged.mac}")[0].find("detail/color")
    assert colour is not None
    assert colour.get("argb") == "-65536"
    (plain,) = tak.of(f"wifi-{odd.mac}")
    assert plain.find("detail/contact").get("callsign") == odd.ssid  # type: ignore[union-attr]
    remarks = plain.findtext("detail/remarks") or ""
    assert "Frequency: " in remarks
    assert "RSSI: " in remarks
    assert odd.mac in remarks
    assert plain.find("detail/color") is None
    (nameless,) = tak.of(f"wifi-{hidden.mac}")
    assert nameless.find("detail/contact").get("callsign") == hidden.mac  # type: ignore[union-attr]
    assert not any(b"MAC,SSID" in raw for raw in tak.raw)  # the header row is no event
