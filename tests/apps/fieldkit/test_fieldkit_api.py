"""WigleToTAK's operators' API on the field kit's port: bodies, errors, persistence,
confinement of folders, the API key."""

from __future__ import annotations

import json
from pathlib import Path

from kit_support import fieldkit


async def test_routes_answer_as_wigletotak_does(tmp_path: Path) -> None:
    async with fieldkit(tmp_path) as kit, kit.client() as api:
        cases = [
            ("/update_tak_settings", {"tak_server_ip": "127.0.0.1", "tak_server_port": "6666"}, 200,
             {"message": "TAK settings updated successfully!"}),
            ("/update_tak_settings", {"tak_server_ip": "127.0.0.1"}, 400,
             {"error": "Missing TAK Server IP or Port in the request"}),
            ("/update_multicast_state", {"takMulticast": False}, 200,
             {"message": "TAK Multicast state updated successfully!"}),
            ("/update_multicast_state", {}, 400, {"error": "Missing TAK Multicast state in the request"}),
            ("/update_analysis_mode", {"mode": "postcollection"}, 200,
             {"message": "Analysis mode updated successfully!"}),
            ("/update_analysis_mode", {"mode": "later"}, 400, {"error": "Invalid analysis mode in the request"}),
            ("/update_antenna_sensitivity", {"antenna_sensitivity": "custom", "custom_factor": 1.8}, 200,
             {"message": "Antenna sensitivity updated successfully!"}),
            ("/update_antenna_sensitivity", {"antenna_sensitivity": "yagi"}, 400,
             {"error": "Invalid antenna sensitivity type"}),
            ("/update_antenna_sensitivity", {"antenna_sensitivity": "custom", "custom_factor": -1}, 400,
             {"error": "Custom sensitivity factor must be positive"}),
            ("/update_antenna_sensitivity", {"antenna_sensitivity": "custom", "custom_factor": "x"}, 400,
             {"error": "Invalid custom sensitivity factor"}),
            ("/update_antenna_sensitivity", {}, 400, {"error": "Missing antenna sensitivity in the request"}),
            ("/add_to_whitelist", {"ssid": "HomeNet"}, 200, {"message": "SSID HomeNet added to whitelist"}),
            ("/add_to_whitelist", {"mac": "aa:bb:cc:dd:ee:01"}, 200,
             {"message": "MAC address aa:bb:cc:dd:ee:01 added to whitelist"}),
            ("/add_to_whitelist", {}, 400, {"error": "Missing SSID or MAC address in request"}),
            ("/remove_from_whitelist", {"ssid": "HomeNet"}, 200, {"message": "SSID HomeNet removed from whitelist"}),
            ("/remove_from_whitelist", {"ssid": "HomeNet"}, 404, {"error": "SSID HomeNet not found in whitelist"}),
            ("/remove_from_whitelist", {"mac": "AA:BB:CC:DD:EE:09"}, 404,
             {"error": "MAC address AA:BB:CC:DD:EE:09 not found in whitelist"}),
            ("/remove_from_whitelist", {}, 400, {"error": "Missing SSID or MAC address in request"}),
            ("/add_to_blacklist", {"ssid": "Evil & <Twin>", "argb_value": "-65536"}, 200,
             {"message": "SSID Evil & <Twin> with ARBG value -65536 added to blacklist"}),
            ("/add_to_blacklist", {"mac": "AA:BB:CC:DD:EE:02", "argb_value": -16776961}, 200,
             {"message": "MAC address AA:BB:CC:DD:EE:02 with ARBG value -16776961 added to blacklist"}),
            ("/add_to_blacklist", {"mac": "AA:BB:CC:DD:EE:02"}, 400,
             {"error": "Missing SSID or MAC address or ARBG value in request"}),
            ("/add_to_blacklist", {"mac": "AA:BB:CC:DD:EE:02", "argb_value": "red"}, 400,
             {"error": "Invalid ARGB value in request"}),
            ("/remove_from_blacklist", {"ssid": "nope"}, 404, {"error": "SSID nope not found in blacklist"}),
            ("/remove_from_blacklist", {}, 400, {"error": "Missing SSID or MAC address in request"}),
            ("/start_broadcast", {"directory": str(kit.wigle)}, 400, {"error": "Filename parameter is missing"}),
            ("/start_broadcast", {"directory": str(kit.wigle), "filename": "none.wiglecsv"}, 404,
             {"error": "File does not exist"}),
            ("/stop_broadcast", {}, 200, {"message": "Broadcast stopped successfully"}),
        ]  # fmt: skip
        for path, body, status, expected in cases:
            r = await api.post(path, json=body)
            assert (r.status_code, r.json()) == (status, expected), path
        r = await api.post("/update_multicast_state", content=b"not json")
        assert r.status_code == 400
        r = await api.get("/get_antenna_settings")
        assert r.json() == {
            "current_sensitivity": "custom",
            "available_types": ["standard", "alfa_card", "high_gain", "rpi_internal", "custom"],
            "custom_factor": 1.8,
        }
        (kit.wigle / "Kismet-20260101-00-00-00-1.wiglecsv").write_text("")
        (kit.wigle / "Kismet-20260102-00-00-00-1.wiglecsv").write_text("")
        (kit.wigle / "notes.txt").write_text("")
        r = await api.get("/list_wigle_files", params={"directory": str(kit.wigle)})
        assert r.json() == {
            "files": ["Kismet-20260102-00-00-00-1.wiglecsv", "Kismet-20260101-00-00-00-1.wiglecsv"]
        }
        r = await api.get("/list_wigle_files")
        assert (r.status_code, r.json()) == (400, {"error": "Directory parameter is missing"})
        body = {"directory": str(kit.wigle), "filename": "Kismet-20260101-00-00-00-1.wiglecsv"}
        r = await api.post("/start_broadcast", json=body)
        assert r.json() == {"message": "Broadcast started for file: Kismet-20260101-00-00-00-1.wiglecsv"}
        # WigleToTAK2: the directory defaults to the kit's WiGLE folder
        r = await api.post("/start_broadcast", json={"filename": "Kismet-20260102-00-00-00-1.wiglecsv"})
        assert r.status_code == 200
        status = await kit.status()
        assert status["broadcasting"] is True
        assert status["filename"] == "Kismet-20260102-00-00-00-1.wiglecsv"
        assert status["takMulticast"] is False
        assert status["blacklist"]["macs"] == {"AA:BB:CC:DD:EE:02": -16776961}
        assert status["whitelist"] == {"ssids": [], "macs": ["AA:BB:CC:DD:EE:01"]}
        page = await api.get("/")
        assert page.status_code == 200
        assert "broadcast-toggle" in page.text


async def test_settings_survive_a_restart(tmp_path: Path) -> None:
    async with fieldkit(tmp_path) as kit, kit.client() as api:
        await api.post("/update_tak_settings", json={"tak_server_ip": "127.0.0.1", "tak_server_port": 4242})
        await api.post("/update_multicast_state", json={"takMulticast": False})
        await api.post("/update_antenna_sensitivity", json={"antenna_sensitivity": "alfa_card"})
        await api.post("/add_to_whitelist", json={"ssid": "HomeNet"})
        await api.post("/add_to_blacklist", json={"mac": "aa:bb:cc:dd:ee:03", "argb_value": "0xFFFF0000"})
        await api.post("/stop_broadcast", json={})
    kept = json.loads((tmp_path / "data" / "fieldkit" / "settings.json").read_text())
    assert kept["tak_server_port"] == "4242"
    async with fieldkit(tmp_path) as kit:
        status = await kit.status()
    assert status["broadcasting"] is False
    assert status["takMulticast"] is False
    assert (status["tak_server_ip"], status["tak_server_port"]) == ("127.0.0.1", "4242")
    assert status["antenna_sensitivity"] == "alfa_card"
    assert status["whitelist"]["ssids"] == ["HomeNet"]
    assert status["blacklist"]["macs"] == {"AA:BB:CC:DD:EE:03": -65536}


async def test_folders_outside_the_roots_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "loot.wiglecsv").write_text("")
    extra = tmp_path / "surveys"
    extra.mkdir()
    (extra / "old.wiglecsv").write_text("")
    async with fieldkit(tmp_path) as kit, kit.client() as api:
        (kit.wigle / "sub").mkdir()
        (kit.wigle / "sub" / "a.wiglecsv").write_text("")
        outside = [str(secret), f"{kit.wigle}/../secret", "/etc", "/", str(extra)]
        for directory in outside:
            r = await api.get("/list_wigle_files", params={"directory": directory})
            assert r.status_code == 403, directory
            assert r.json() == {"error": "Directory is outside the allowed folders"}
            r = await api.post("/start_broadcast", json={"directory": directory, "filename": "loot.wiglecsv"})
            assert r.status_code == 403, directory
        for name in ["../secret/loot.wiglecsv", "/etc/passwd", "..", "sub/a.wiglecsv"]:
            r = await api.post("/start_broadcast", json={"directory": str(kit.wigle), "filename": name})
            assert r.status_code == 403, name
        # a symbolic link out of the root leads outside it too
        (kit.wigle / "link").symlink_to(secret)
        r = await api.get("/list_wigle_files", params={"directory": str(kit.wigle / "link")})
        assert r.status_code == 403
        (kit.wigle / "loot.wiglecsv").symlink_to(secret / "loot.wiglecsv")
        r = await api.post(
            "/start_broadcast", json={"directory": str(kit.wigle), "filename": "loot.wiglecsv"}
        )
        assert r.status_code == 403
        r = await api.get("/list_wigle_files", params={"directory": str(kit.wigle / "sub")})
        assert r.json() == {"files": ["a.wiglecsv"]}


async def test_the_api_key_is_asked_for_when_set(tmp_path: Path) -> None:
    async with fieldkit(tmp_path, FIELDKIT_API_KEY="s3cret-key") as kit:
        async with kit.client() as anonymous:
            r = await anonymous.post("/stop_broadcast", json={})
            assert (r.status_code, r.json()) == (401, {"error": "Missing or invalid API key"})
            assert (await anonymous.get("/get_antenna_settings")).status_code == 401
            assert (await anonymous.get("/status")).status_code == 401
            assert (await anonymous.get("/")).status_code == 200  # the page asks for the key itself
            wrong = await anonymous.post("/stop_broadcast", headers={"X-API-Key": "guess"}, json={})
            assert wrong.status_code == 401
            bearer = await anonymous.post(
                "/stop_broadcast", headers={"Authorization": "Bearer s3cret-key"}, json={}
            )
            assert bearer.status_code == 200
        async with kit.client("s3cret-key") as admin:
            r = await admin.post("/update_multicast_state", json={"takMulticast": True})
            assert r.status_code == 200
        assert (await kit.status("s3cret-key"))["broadcasting"] is False


async def test_the_operator_server_sends_security_headers(tmp_path: Path) -> None:
    """The kit's own server is bounded and labelled like the engine's: the page gets its
    policy and is never framed, the API's answers are not cached or sniffed."""
    async with fieldkit(tmp_path) as kit, kit.client() as api:
        page = await api.get("/")
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        answer = await api.post("/update_multicast_state", json={"takMulticast": True})
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "server" not in answer.headers
