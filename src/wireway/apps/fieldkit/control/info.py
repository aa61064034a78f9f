"""`/api/webhook/info`: the host, the kit's programs and the network interfaces with
their mode, as the kit's Node service answered (computed at most once a minute)."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from wireway.apps.fieldkit.control.options import ControlOptions
from wireway.supervision import ServiceControl, ServiceError

CACHE_SECONDS = 60.0
NET = Path("/sys/class/net")
ARPHRD_IEEE80211_RADIOTAP = 803  # an interface in monitor mode


def percentage(used: float, total: float) -> str:
    return f"{used / total * 100:.2f}" if total else "0.00"


def system() -> dict[str, Any]:
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage("/")
    return {
        "hostname": socket.gethostname(),
        "platform": platform.system().lower(),
        "arch": platform.machine(),
        "uptime": int(time.time() - psutil.boot_time()),
        "loadAverage": list(os.getloadavg()),
        "memory": {
            "total": memory.total,
            "free": memory.available,
            "used": memory.total - memory.available,
            "percentage": percentage(memory.total - memory.available, memory.total),
        },
        "disk": {
            "total": disk.total,
            "free": disk.free,
            "used": disk.used,
            "percentage": percentage(disk.used, disk.total),
        },
    }


def interface_mode(name: str) -> tuple[str, str | None]:
    """(type, mode): `wireless` with `monitor` or `managed`, else `ethernet`/`loopback`."""
    base = NET / name
    try:
        kind = int((base / "type").read_text().strip())
    except (OSError, ValueError):
        kind = 0
    if kind == ARPHRD_IEEE80211_RADIOTAP:
        return "wireless", "monitor"
    if (base / "wireless").exists() or (base / "phy80211").exists():
        return "wireless", "managed"
    return ("loopback" if name == "lo" else "ethernet"), None


def interfaces() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    stats = psutil.net_if_stats()
    for name, addrs in sorted(psutil.net_if_addrs().items()):
        kind, mode = interface_mode(name)
        ipv4 = next((a.address for a in addrs if a.family == socket.AF_INET), None)
        mac = next((a.address for a in addrs if a.family == psutil.AF_LINK), None)
        up = stats[name].isup if name in stats else False
        found.append(
            {
                "name": name,
                "address": ipv4,
                "mac": mac,
                "type": kind,
                "mode": mode,
                "monitoring": mode == "monitor",
                "up": up,
            }
        )
    return found


def version(argv: list[str]) -> str | None:
    """The first line a program prints for its version, when it is installed."""
    if not argv or shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0][:200] if text else None


def services(options: ControlOptions, control: ServiceControl | None, data_dir: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in control.names() if control is not None else []:
        try:
            statuses = control.status(name) if control is not None else []
            log = str(control.log_path(name)) if control is not None else None
        except (ServiceError, ValueError):
            continue
        for status in statuses:
            found[name] = {
                "state": status.state,
                "pid": status.pid,
                "ready": status.ready,
                "logPath": log,
                "leases": list(status.leases),  # e.g. Kismet's `iface:wlan2`: the interface it uses
            }
    for program, argv in options.versions.items():
        found.setdefault(program, {})["version"] = version(argv)
    found["paths"] = {"dataPath": str(data_dir), **options.data_paths}
    return found


class Info:
    """The answer, kept for a minute (the versions run programs)."""

    def __init__(self, options: ControlOptions, control: ServiceControl | None, data_dir: Path) -> None:
        self.options, self.control, self.data_dir = options, control, data_dir
        self.cached: tuple[float, dict[str, Any]] | None = None

    def get(self) -> dict[str, Any]:
        now = time.monotonic()
        if self.cached is not None and now - self.cached[0] < CACHE_SECONDS:
            return self.cached[1]
        body = {
            "system": system(),
            "services": services(self.options, self.control, self.data_dir),
            "network": {"interfaces": interfaces()},
        }
        self.cached = (now, body)
        return body
