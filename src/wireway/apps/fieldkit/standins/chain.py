"""`wireway run --app fieldkit --simulate`: the kit's whole chain (its patterns,
control API and services) with a stand-in for each program that is not installed or
has no hardware here (gpsd without its serial device, Kismet without its WiFi
interface, the MAVLink bridge), on loopback, in a folder of its own."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

PROGRAMS = {  # service -> (variable naming its program, the program, stand-in module)
    "gpsd": ("FIELDKIT_GPSD_BIN", "gpsd", "gpsd"),
    "mavgps": ("FIELDKIT_MAVGPS_BIN", "mavgps", "mavgps"),
    "kismet": ("FIELDKIT_KISMET_BIN", "kismet", "kismet"),
}


def chain_files() -> list[Path]:
    """The kit's pattern files and its chain (control.yaml, services.yaml)."""
    root = Path(str(resources.files("wireway") / "apps" / "fieldkit"))
    return sorted([*(root / "patterns").glob("*.yaml"), *(root / "chain").glob("*.yaml")])


@dataclass
class Simulation:
    folder: Path  # the pattern folder to run
    variables: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def missing_hardware(service: str, env: dict[str, str]) -> str | None:
    """Why the real program cannot run here although installed, or None."""
    if service == "gpsd":
        device = env.get("FIELDKIT_GPS_DEVICE") or "/dev/ttyUSB0"
        return None if Path(device).exists() else f"no {device}"
    if service == "kismet":
        iface = env.get("FIELDKIT_IFACE") or "wlan2"
        return None if Path("/sys/class/net", iface).exists() else f"no interface {iface}"
    return None


def wrapper(folder: Path, module: str) -> Path:
    """An executable named `<program>-standin` running the stand-in with the program's arguments."""
    path = folder / f"{module}-standin"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m wireway.apps.fieldkit.standins.{module} "$@"\n')
    path.chmod(0o755)
    return path


def iface_wrapper(folder: Path, program: str) -> Path:
    """`<program>-standin` for `ip` or `iw`: records what it was asked in `iface-standin.log`."""
    path = folder / f"{program}-standin"
    log = folder / "iface-standin.log"
    module = "wireway.apps.fieldkit.standins.iface"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} --as {program} --log "{log}" "$@"\n')
    path.chmod(0o755)
    return path


def prepare(data_dir: Path, env: dict[str, str]) -> Simulation:
    """Copy the chain into `<data_dir>/fieldkit-simulate/` and choose the programs."""
    folder = (data_dir / "fieldkit-simulate").resolve()
    bins = folder / "standins"
    bins.mkdir(parents=True, exist_ok=True)
    for src in chain_files():
        shutil.copyfile(src, folder / src.name)
    sim = Simulation(folder)
    v = sim.variables
    for service, (variable, program, module) in PROGRAMS.items():
        if env.get(variable):
            sim.notes.append(f"{service}: {env[variable]} (from {variable})")
            continue
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        why = "not installed" if found is None else missing_hardware(service, env)
        if why is None:
            sim.notes.append(f"{service}: {found}")
            continue
        v[variable] = str(wrapper(bins, module))
        sim.notes.append(f"{service}: a stand-in ({why}): {v[variable]}")
        if service == "kismet":  # no card: its reset to managed mode changes nothing either
            for program in ("ip", "iw"):
                v[f"FIELDKIT_{program.upper()}_BIN"] = str(iface_wrapper(bins, program))
    # what the stand-ins and the patterns share, unless given
    defaults = {
        "FIELDKIT_WIGLE_DIR": str(folder / "kismet"),
        "FIELDKIT_GPSD_ENABLED": "true",
        "FIELDKIT_KISMET_CONFIG_DIR": str(folder / "kismet-conf"),
        # a simulation answers on this machine only, unless told otherwise
        "FIELDKIT_LISTEN": "127.0.0.1:8000",
        "FIELDKIT_CONTROL_LISTEN": "127.0.0.1:8092",
    }
    if env.get("FIELDKIT_GPSD_PORT") and not env.get("FIELDKIT_GPSD"):
        defaults["FIELDKIT_GPSD"] = "127.0.0.1:" + env["FIELDKIT_GPSD_PORT"]
    for key, value in defaults.items():
        v[key] = env.get(key) or value
    Path(v["FIELDKIT_WIGLE_DIR"]).mkdir(parents=True, exist_ok=True)
    Path(v["FIELDKIT_KISMET_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
    return sim
