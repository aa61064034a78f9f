"""The socket file of a unix input: a stale one removed, a new one bound with its
mode and owner, and removed again at stop."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from pathlib import Path

from wireway.connectors.unix.config import UnixInputConfig, group_id, user_id
from wireway.errors import WirewayError


def someone_listens(path: Path) -> bool:
    """Whether a process accepts connections or datagrams on the socket file."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_UNIX, kind) as probe:
            probe.settimeout(1)
            try:
                probe.connect(str(path))
            except ConnectionRefusedError:
                continue
            except OSError as exc:
                if exc.errno == errno.EPROTOTYPE:  # a socket of the other kind
                    continue
                raise WirewayError(f"cannot tell whether {path} is in use: {exc.strerror}") from exc
            return True
    return False


def remove_stale(path: Path) -> None:
    """Remove a socket file nobody listens on (a crashed run's); refuse anything else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise WirewayError(f"{path} exists and is not a socket: not removing it")
    if someone_listens(path):
        raise WirewayError(f"another process listens on {path}")
    path.unlink()


def bind(cfg: UnixInputConfig) -> tuple[socket.socket, int]:
    """A bound, non-blocking socket with the file's mode and owner set, and the file's
    inode (so stop removes only the file it made)."""
    path = Path(cfg.path)
    remove_stale(path)
    kind = socket.SOCK_STREAM if cfg.socket == "stream" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_UNIX, kind)
    try:
        sock.bind(str(path))
        if cfg.mode is not None:
            os.chmod(path, int(cfg.mode, 8))
        if cfg.owner is not None or cfg.group is not None:
            uid = user_id(cfg.owner) if cfg.owner is not None else -1
            gid = group_id(cfg.group) if cfg.group is not None else -1
            os.chown(path, uid, gid)
        inode = os.lstat(path).st_ino
    except (OSError, ValueError) as exc:
        sock.close()
        why = exc.strerror if isinstance(exc, OSError) else str(exc).split(" - at")[0]
        raise WirewayError(f"cannot set up the socket file {path}: {why}") from exc
    sock.setblocking(False)
    return sock, inode


def remove(path: Path, inode: int) -> None:
    """Remove the socket file if it is still the one bound (not a successor's)."""
    with contextlib.suppress(OSError):
        if os.lstat(path).st_ino == inode:
            path.unlink()
