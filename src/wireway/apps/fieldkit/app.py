"""The field kit's service: the operators' settings, live counts and the API's own server."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wireway.apps.fieldkit import settings as kept
from wireway.apps.fieldkit.http_server import OperatorServer
from wireway.apps.fieldkit.settings import Settings
from wireway.connectors.base import AppService, EngineView
from wireway.connectors.hostport import parse_hostport
from wireway.observability import logging as log

logger = log.get("fieldkit")
DEVICES_COUNTED = 100_000  # distinct devices remembered for the "devices tracked" count


@dataclass
class KitOptions:
    """What the pattern gives the service (through the `fieldkit_filter` step)."""

    wigle_dir: str = "."
    roots: list[str] = field(default_factory=list)
    listen: str = "0.0.0.0:8000"
    api_key: str = ""
    live_input: str = "kismet"
    first: Settings = field(default_factory=Settings)


@dataclass
class Counts:
    rows: int = 0  # rows read (before any filter)
    sent: int = 0  # events written to a TAK destination
    last_fix: dict[str, Any] | None = None
    devices: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def device(self, mac: str) -> None:
        devices = self.devices
        if mac in devices:
            devices.move_to_end(mac)
            return
        devices[mac] = None
        if len(devices) > DEVICES_COUNTED:
            devices.popitem(last=False)


class FieldKit(AppService):
    """The settings WigleToTAK's API changes (applied to the next row at once, kept in
    `<data-dir>/fieldkit/settings.json`), the counts the operator page shows, and the
    API's HTTP server on its own port."""

    name = "fieldkit"

    def __init__(self, view: EngineView) -> None:
        super().__init__(view)
        self.options = KitOptions()
        self.settings = Settings()
        self.counts = Counts()
        self.patterns: set[str] = set()
        self.positions = False  # the kit's own receiver reported a fix
        self.outputs: set[str] = set()  # the pattern's TAK outputs (their deliveries count as sent)
        # the postcollection replay: path -> starts it; stop() ends it (set by `fieldkit_replay`)
        self.replay: Callable[[Path], Awaitable[None]] | None = None
        self.stop_replay: Callable[[], Awaitable[None]] | None = None
        self.server: OperatorServer | None = None
        self.asgi: Callable[[FieldKit], Any] | None = None  # the API's app (given by fieldkit_filter)
        self.lock = asyncio.Lock()

    # ----- configuration by the components ------------------------------------------
    def configure(self, options: KitOptions, pattern: str, outputs: list[str]) -> None:
        self.options = options
        self.patterns.add(pattern)
        self.outputs.update(outputs)

    @property
    def settings_path(self) -> Path:
        return self.view.data_dir / "fieldkit" / "settings.json"

    def roots(self) -> list[Path]:
        """The folders the API may list and read files from."""
        return [Path(p).resolve() for p in [self.options.wigle_dir, *self.options.roots]]

    def confined(self, folder: str) -> Path | None:
        """`folder` resolved, if inside a configured root (else None: no traversal)."""
        try:
            path = Path(folder).resolve()
        except (OSError, RuntimeError, ValueError):
            return None
        return path if any(path == root or path.is_relative_to(root) for root in self.roots()) else None

    # ----- settings -------------------------------------------------------------------
    async def change(self, apply: Callable[[Settings], object]) -> None:
        """Change the settings and keep them before the answer goes out."""
        async with self.lock:
            apply(self.settings)
            await asyncio.to_thread(kept.save, self.settings_path, self.settings)

    # ----- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self.settings = kept.load(self.settings_path, self.options.first)
        self.view.events.on_delivered(self._delivered)
        if self.options.listen and self.asgi is not None:
            host, port = parse_hostport(self.options.listen)
            self.server = OperatorServer(self.asgi(self), host, port)
            await self.server.start()
            logger.info("field kit operators' API", address=f"http://{host}:{port}/")

    async def resume_replay(self) -> None:
        """After a restart during a postcollection broadcast, the chosen file is replayed again."""
        s = self.settings
        if not (s.broadcasting and s.analysis_mode == "postcollection" and s.filename):
            return
        folder = self.confined(s.directory or self.options.wigle_dir)
        path = folder / s.filename if folder is not None else None
        if self.replay is not None and path is not None and path.is_file():
            await self.replay(path)

    async def stop(self) -> None:
        if self.stop_replay is not None:
            await self.stop_replay()
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def _delivered(self, pattern: str, output: str, latencies: list[float]) -> None:
        if pattern in self.patterns and output in self.outputs:
            self.counts.sent += len(latencies)

    # ----- what the step reports ---------------------------------------------------------
    def row(self, payload: dict[str, Any]) -> None:
        self.counts.rows += 1
        if not self.positions:
            self.fix(payload, "kismet")

    def fix(self, payload: dict[str, Any], source: str) -> None:
        """The newest position: the kit's own receiver once it reported one, else Kismet's rows."""
        lat, lon = payload.get("lat"), payload.get("lon")
        if isinstance(lat, int | float) and isinstance(lon, int | float) and (lat or lon):
            self.counts.last_fix = {"lat": lat, "lon": lon, "at": time.time(), "source": source}
            self.positions = self.positions or source != "kismet"

    def status(self) -> dict[str, Any]:
        s = self.settings
        counts = self.counts
        return {
            "broadcasting": s.broadcasting,
            "analysis_mode": s.analysis_mode,
            "directory": s.directory or self.options.wigle_dir,
            "filename": s.filename,
            "takMulticast": s.multicast,
            "tak_server_ip": s.tak_server_ip,
            "tak_server_port": s.tak_server_port,
            "antenna_sensitivity": s.antenna_sensitivity,
            "custom_factor": s.custom_factor,
            "whitelist": {"ssids": sorted(s.whitelisted_ssids), "macs": sorted(s.whitelisted_macs)},
            "blacklist": {"ssids": s.blacklisted_ssids, "macs": s.blacklisted_macs},
            "counts": {
                "rows_read": counts.rows,
                "devices_tracked": len(counts.devices),
                "events_sent": counts.sent,
                "last_fix": counts.last_fix,
            },
        }

    def health(self) -> dict[str, str]:
        if not self.options.listen:
            return {}
        return {"fieldkit-api": "up" if self.server is not None and self.server.started else "down"}
