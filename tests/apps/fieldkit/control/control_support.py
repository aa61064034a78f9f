"""The control API in-process over real stand-in processes (gpsd, the MAVLink bridge,
Kismet) run by `control_procs.Procs`, with the engine's board of Kismet devices."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from control_procs import Procs, Spec

from conftest import free_port
from wireway.apps.fieldkit.control.api import control_app
from wireway.apps.fieldkit.control.options import ControlOptions
from wireway.apps.fieldkit.control.service import KitControl
from wireway.envelope import Message
from wireway.processors.base import AppService, EngineView
from wireway.processors.devices_view import DevicesView

PY = sys.executable
STANDINS = "wireway.apps.fieldkit.standins"


def specs(tmp: Path, gpsd_port: int, kismet_port: int) -> dict[str, Spec]:
    kismet = (
        f'exec "$0" -m {STANDINS}.kismet -c "${{IFACE:-wlan2}}" --override wardrive -p "{tmp / "kismet"}"'
    )
    return {
        "gpsd": Spec([PY, "-m", f"{STANDINS}.gpsd", "-N", "-n", "-S", str(gpsd_port)], ready_port=gpsd_port),
        "mavgps": Spec(
            [PY, "-m", f"{STANDINS}.mavgps", "--gpsd", f"127.0.0.1:{gpsd_port}"],
            depends_on=["gpsd"],
            ready_log="connected",
        ),
        "kismet": Spec(
            ["sh", "-c", kismet, PY],
            depends_on=["gpsd"],
            ready_port=kismet_port,
            env={"KISMET_STANDIN_PORT": str(kismet_port)},
        ),
    }


@dataclass
class Control:
    kit: KitControl
    procs: Procs
    board: DevicesView
    url: str
    kismet_port: int
    config_dir: Path

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"X-API-Key": key} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, trust_env=False, timeout=30)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/webhook"


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> bool:
    """Ask `check` every 0.1 s until it says yes (bounded): whether it did."""
    for _ in range(int(seconds / 0.1)):
        if await check():
            return True
        await asyncio.sleep(0.1)
    return await check()


async def _publish(messages: list[Message]) -> None:
    return None


@asynccontextmanager
async def control(tmp: Path, **options: Any) -> AsyncIterator[Control]:
    gpsd_port, kismet_port, listen = free_port(), free_port(), free_port()
    procs = Procs(specs(tmp, gpsd_port, kismet_port), tmp / "logs")
    config_dir = tmp / "kismet-conf"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "kismet_site.conf").write_text("source=wlan2\n")
    apps: dict[type[AppService], AppService] = {}
    view = EngineView(
        data_dir=tmp / "data",
        http_address=("127.0.0.1", 0),
        queue_depth=lambda: 0,
        dlq_depth=lambda: 0,
        publish=_publish,
        app_services=apps,
        services=procs,
    )
    board = DevicesView(view)
    apps[DevicesView] = board
    kit = KitControl(view)
    settings: dict[str, Any] = {
        "listen": f"127.0.0.1:{listen}",
        "scripts": {"gps": ["gpsd", "mavgps"], "kismet": ["kismet"]},
        "config_dir": str(config_dir),
        **options,
    }
    kit.configure(ControlOptions(**settings))
    kit.asgi = control_app
    await kit.start()
    try:
        yield Control(kit, procs, board, f"http://127.0.0.1:{listen}", kismet_port, config_dir)
    finally:
        await kit.stop()
        await procs.close()
