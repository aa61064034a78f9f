"""`kill -9` of wireway while Kismet writes: after the restart every device written
before, during and after the kill is on the map (rows read again are sent again at
most, never skipped)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from kit_support import GROUP, listening, pattern_on_loopback

from conftest import free_port
from support import eventually
from wireway.apps.fieldkit.simulate import Simulator


@asynccontextmanager
async def wireway_run(tmp: Path, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    full = {**os.environ, **env}
    full.pop("WIREWAY_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wireway", "run", str(pattern_on_loopback(tmp)),
        "--data-dir", str(tmp / "data"), "--http", f"127.0.0.1:{free_port()}",
        env=full, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def answers(url: str) -> bool:
    async with httpx.AsyncClient(trust_env=False, timeout=1) as client:
        try:
            return (await client.get(url)).status_code == 200
        except httpx.HTTPError:
            return False


async def wait_api(url: str) -> None:
    for _ in range(300):
        if await answers(url):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


async def test_a_killed_kit_sends_every_device_after_its_restart(tmp_path: Path) -> None:
    wigle = tmp_path / "kismet"
    wigle.mkdir()
    port, listen = free_port(), free_port()
    env = {
        "FIELDKIT_WIGLE_DIR": str(wigle),
        "FIELDKIT_LISTEN": f"127.0.0.1:{listen}",
        "FIELDKIT_MULTICAST": f"{GROUP}:{port}",
    }
    sim = Simulator(devices=60, layout="1.6", seed=11)
    uids = {f"wifi-{d.mac}" for d in sim.devices}
    path = wigle / "Kismet-20261204-14-00-00-1.wiglecsv"
    async with listening(port) as tak:
        with path.open("w", encoding="ascii") as f:
            f.write(sim.header())
            async with wireway_run(tmp_path, env) as first:
                await wait_api(f"http://127.0.0.1:{listen}/status")
                for d in sim.devices[:20]:
                    f.write(sim.line(d))
                    f.flush()
                await eventually(lambda: len({e.get("uid") for e in tak.events}) >= 5, timeout=30)
                for d in sim.devices[20:40]:  # written while it is being killed
                    f.write(sim.line(d))
                    f.flush()
                    if d is sim.devices[25]:
                        first.kill()
                await first.wait()
            for d in sim.devices[40:]:  # written while it is down
                f.write(sim.line(d))
            f.flush()
            async with wireway_run(tmp_path, env):
                await eventually(lambda: {e.get("uid") for e in tak.events} >= uids, timeout=60)
    assert {e.get("uid") for e in tak.events} == uids
