"""The demo end to end: `wireway simulate --app fieldkit --gpsd-port` writes Kismet rows
and runs Debian's gpsd on a simulated walk; the field kit reads both."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest
from kit_support import fieldkit, listening

from conftest import free_port
from support import eventually

GPSD = shutil.which("gpsd") or ("/usr/sbin/gpsd" if Path("/usr/sbin/gpsd").exists() else None)


def need_gpsd() -> None:
    if GPSD is None:
        message = "gpsd is not installed (Debian: apt-get install gpsd)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


async def test_simulated_kismet_and_gpsd_feed_the_kit(tmp_path: Path) -> None:
    need_gpsd()
    gpsd_port = free_port()
    env = {"FIELDKIT_GPSD_ENABLED": "true", "FIELDKIT_GPSD": f"127.0.0.1:{gpsd_port}"}
    async with fieldkit(tmp_path, **env) as kit, listening(kit.port) as tak:
        args = ["simulate", "--app", "fieldkit", "--wigle-dir", str(kit.wigle), "--gpsd-port", str(gpsd_port)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wireway", *args, "--devices", "10", "--total", "200", "--rate", "40",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await eventually(lambda: (kit.counts()["last_fix"] or {}).get("source") == "gpsd", timeout=30)
            await eventually(lambda: len({e.get("uid") for e in tak.events}) == 10, timeout=30)
        finally:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
    assert b"gpsd on 127.0.0.1:" in out
    fix = kit.counts()["last_fix"]
    assert abs(fix["lat"] - 38.1105) < 0.01
    assert abs(fix["lon"] + 122.6269) < 0.01
