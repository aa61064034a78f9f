"""The shipped samples (Kismet's 1.4 and 1.6 layouts, a WiGLE-Android file) through the
kit as successive Kismet runs: every device once, its SSID and frequency right."""

from __future__ import annotations

from pathlib import Path

from kit_support import fieldkit, listening

from conftest import DATA
from support import eventually


async def test_both_kismet_layouts_and_wigle_android_become_the_same_kind_of_events(tmp_path: Path) -> None:
    runs = [
        ("kismet_wiglecsv_v1.4_layout.wiglecsv", 5),
        ("kismet_wiglecsv_v1.6_layout.wiglecsv", 6),  # EE:01 and the BT devices again, unmoved
        ("stinky_test-integration.wiglecsv", 7),
    ]
    async with fieldkit(tmp_path) as kit, listening(kit.port) as tak:
        for n, (sample, devices) in enumerate(runs, 1):
            text = (DATA / sample).read_text()
            # a followed file's last line counts once it ends (the Android file's does not)
            (kit.wigle / f"Kismet-20260601-12-00-0{n}-1.wiglecsv").write_text(text.rstrip("\n") + "\n")
            await eventually(lambda devices=devices: len(tak.events) == devices, timeout=15)  # type: ignore[misc]
    by_uid = {e.get("uid"): e for e in tak.events}
    assert set(by_uid) == {
        "wifi-AA:BB:CC:DD:EE:01",
        "wifi-AA:BB:CC:DD:EE:02",
        "wifi-AA:BB:CC:DD:EE:03",
        "wifi-AA:BB:CC:DD:EE:04",
        "wifi-AA:BB:CC:DD:EE:FF",
        "wifi-11:22:33:44:55:66",
        "wifi-11:22:33:44:55:77",
    }
    assert by_uid["wifi-AA:BB:CC:DD:EE:03"].find("detail/contact").get("callsign") == "Cafe, Guest"  # type: ignore[union-attr]
    assert by_uid["wifi-AA:BB:CC:DD:EE:02"].find("detail/contact").get("callsign") == "AA:BB:CC:DD:EE:02"  # type: ignore[union-attr]
    assert "Frequency: 5180 MHz" in (by_uid["wifi-AA:BB:CC:DD:EE:04"].findtext("detail/remarks") or "")
    android = by_uid["wifi-AA:BB:CC:DD:EE:FF"].find("point")
    assert android is not None
    assert (android.get("lat"), android.get("lon"), android.get("ce")) == ("52.520008", "13.404954", "5.0")
