"""Making and opening a named pipe, for the `pipe` input and output."""

from __future__ import annotations

import os
import stat

from wireway.connectors.pipe.config import FifoOptions
from wireway.errors import WirewayError


def ensure_fifo(options: FifoOptions) -> None:
    """Make the FIFO when it is missing and `create` allows; refuse anything else there."""
    path = options.path
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if not options.create:
            raise WirewayError(f"named pipe {path} does not exist (and `create` is false)") from None
        try:
            os.mkfifo(path, options.permissions)
            # the umask may have taken bits away: the mode asked for is the mode given
            os.chmod(path, options.permissions)
        except FileExistsError:  # made by someone else meanwhile
            pass
        except OSError as exc:
            raise WirewayError(f"cannot make named pipe {path}: {exc.strerror}") from exc
        return
    if not stat.S_ISFIFO(mode):
        raise WirewayError(f"{path} exists and is not a named pipe")


def open_reading(path: str) -> int:
    """A non-blocking read end: opening it does not wait for a writer."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise WirewayError(f"cannot open named pipe {path}: {exc.strerror}") from exc
