"""Simulator rows -> the field kit -> CoT events a TAK client gets on the multicast group."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import takproto
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
    for raw in tak.raw:  # what a TAK client library makes of them: protocol v1, same callsign
        message = takproto.parse_proto(takproto.xml2proto(raw))
        assert message.cotEvent.uid.startswith("wifi-")
    parsed = {takproto.parse_proto(takproto.xml2proto(r)).cotEvent.uid: r for r in tak.raw}
    odd_event = takproto.parse_proto(takproto.xml2proto(parsed[f"wifi-{odd.mac}"]))
    assert odd_event.cotEvent.detail.contact.callsign == odd.ssid


class Unicast(asyncio.DatagramProtocol):
    """The operators' TAK server (UDP, as WigleToTAK sends to it)."""

    def __init__(self) -> None:
        self.events: list[ET.Element] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.events.append(ET.fromstring(data))


async def test_replay_a_chosen_file_to_the_operators_server_then_stop(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(Unicast, local_addr=("127.0.0.1", 0))
    server_port = transport.get_extra_info("sockname")[1]
    sim = Simulator(devices=6, layout="1.4", seed=3)
    survey = tmp_path / "kismet" / "Kismet-20260101-09-00-00-1.wiglecsv"
    survey.parent.mkdir()
    survey.write_text(sim.header() + "".join(sim.line(d) for d in sim.devices), encoding="ascii")
    try:
        async with fieldkit(tmp_path, FIELDKIT_BROADCAST="false") as kit, listening(kit.port) as tak:
            async with kit.client() as api:
                await api.post("/update_multicast_state", json={"takMulticast": False})
                body = {"tak_server_ip": "127.0.0.1", "tak_server_port": str(server_port)}
                assert (await api.post("/update_tak_settings", json=body)).status_code == 200
                # broadcast off: the live file is read, nothing is sent
                await eventually(lambda: kit.counts()["rows_read"] == 6)
                assert (await kit.status())["counts"]["events_sent"] == 0
                await api.post("/update_analysis_mode", json={"mode": "postcollection"})
                r = await api.post("/start_broadcast", json={"filename": survey.name})
                assert r.status_code == 200
                await eventually(lambda: len(server.events) == 6)
                assert {e.get("uid") for e in server.events} == {f"wifi-{d.mac}" for d in sim.devices}
                assert not tak.events  # multicast switched off
                counts = (await kit.status())["counts"]
                assert counts["events_sent"] == 6
                assert counts["devices_tracked"] == 6
                await api.post("/stop_broadcast", json={})
                await api.post("/update_analysis_mode", json={"mode": "realtime"})
                # rows that arrive while stopped are read and counted, not sent
                with survey.open("a", encoding="ascii") as f:
                    for d in sim.devices:
                        d.lat += 0.01
                        f.write(sim.line(d))
                await eventually(lambda: kit.counts()["rows_read"] == 18)
                assert len(server.events) == 6
    finally:
        transport.close()


async def test_a_postcollection_broadcast_resumes_after_a_restart(tmp_path: Path) -> None:
    sim = Simulator(devices=4, layout="1.4", seed=4)
    surveys = tmp_path / "kismet" / "done"
    surveys.mkdir(parents=True)
    survey = surveys / "Kismet-20250101-09-00-00-1.wiglecsv"
    survey.write_text(sim.header() + "".join(sim.line(d) for d in sim.devices), encoding="ascii")
    async with fieldkit(tmp_path) as kit, listening(kit.port) as tak:
        async with kit.client() as api:
            await api.post("/update_analysis_mode", json={"mode": "postcollection"})
            r = await api.post("/start_broadcast", json={"directory": str(surveys), "filename": survey.name})
            assert r.status_code == 200
        await eventually(lambda: len(tak.events) == 4)
    async with fieldkit(tmp_path) as kit:
        await eventually(lambda: kit.counts()["rows_read"] == 4)  # read again from its start
        status = await kit.status()
    assert (status["analysis_mode"], status["filename"]) == ("postcollection", survey.name)
