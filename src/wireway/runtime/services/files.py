"""The run directory, PID files and state files: written atomically, trusted only when
the process they name is the one that wrote them (its start time matches)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

SYSTEM_RUN_DIR = Path("/run/wireway")
# two readings of one process's start time differ by rounding only
SAME_START = 0.05


def run_dir(data_dir: Path) -> Path:
    """Where PID files go: /run/wireway (one folder per data directory, so instances on
    other data directories never meet) when writable, else `<data dir>/run`.
    $WIREWAY_RUN_DIR overrides both."""
    env = os.environ.get("WIREWAY_RUN_DIR")
    if env:
        base = Path(env)
    elif _writable(SYSTEM_RUN_DIR):
        base = SYSTEM_RUN_DIR
    else:
        return data_dir.resolve() / "run"
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return base / key


def lease_dir(data_dir: Path) -> Path:
    """Leases are the host's: one folder for every instance (beside the run folders)."""
    return run_dir(data_dir).parent / "leases" if _shared() else data_dir.resolve() / "run" / "leases"


def _shared() -> bool:
    return bool(os.environ.get("WIREWAY_RUN_DIR")) or _writable(SYSTEM_RUN_DIR)


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def start_time(pid: int) -> float | None:
    """The process's start time, None when there is no such (living) process."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def same_process(pid: int, created: float) -> bool:
    """True when `pid` is alive and started at `created` (not a reused PID)."""
    now = start_time(pid)
    return now is not None and abs(now - created) < SAME_START


@dataclass(frozen=True)
class PidRecord:
    """What a PID file holds."""

    service: str
    pid: int
    created: float  # psutil create_time of the process
    pgid: int
    # the variables its start was given (over its `env:`): an adopted service restarts,
    # and names its leases, as that run did
    env: dict[str, str] = field(default_factory=dict)
    mark: str = ""  # process.MARK of its processes


class PidFiles:
    """One PID file per service in a run directory; this engine is their only writer
    (it holds the data directory's lock, and the run directory is that data directory's)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, service: str) -> Path:
        return self.folder / f"{service}.pid"

    def write(self, record: PidRecord) -> None:
        write_atomic(self.path(record.service), asdict(record))

    def remove(self, service: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(service).unlink()

    def read(self, service: str) -> PidRecord | None:
        """The record, only when its process still runs (same PID and start time);
        a stale file is removed."""
        data = read_json(self.path(service))
        if data is None:
            return None
        env = data.get("env")
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            env = {}
        try:
            mark = str(data.get("mark") or "")
            record = PidRecord(
                service, int(data["pid"]), float(data["created"]), int(data["pgid"]), env, mark
            )
        except (KeyError, TypeError, ValueError):
            record = None
        if record is None or not same_process(record.pid, record.created):
            self.remove(service)
            return None
        return record
