"""Options of the `pipe` input and output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta


class FifoOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Where the named pipe is (what the `pipe` input and output share)."""

    path: Annotated[str, Meta(description="the named pipe (FIFO), relative to the working directory")]
    create: Annotated[bool, Meta(description="make the FIFO when it does not exist (os.mkfifo)")] = True
    mode: Annotated[
        str | int,
        Meta(
            description='permissions of a FIFO wireway makes, in octal: "0600" (YAML reads 0600 as octal too)'
        ),
    ] = "0600"

    def __post_init__(self) -> None:
        if not self.path or self.path.endswith("/"):
            raise ValueError("expected the path of a named pipe - at `$.path`")
        if not 0 <= self.permissions <= 0o777:
            raise ValueError('expected permissions in octal, like "0600" - at `$.mode`')

    @property
    def permissions(self) -> int:
        """The mode's bits (-1 when it is not octal)."""
        if isinstance(self.mode, int):
            return self.mode
        try:
            return int(self.mode, 8)
        except ValueError:
            return -1

    def resources(self, base_dir: Path) -> list[str]:
        return [f"fifo {Path(self.path).resolve()}"]


class PipeInputConfig(FifoOptions, kw_only=True):
    """Read lines from a named pipe (FIFO), one message per line.

    Each line is decoded through the entry's `format:`, one that reads lines (`json`
    by default: one JSON value per line; `text`, `csv`); a line that does not decode
    goes to the DLQ with the reason.

    Writers may come and go: when the last one closes the pipe, wireway opens it
    again and waits for the next, so `echo '{"a": 1}' > my.fifo` can run any
    number of times. The FIFO is made at start when it is missing (`create`).
    """

    max_line_bytes: Annotated[
        int, Meta(ge=64, description="the longest line read; a longer one goes to the DLQ")
    ] = 1024 * 1024


class PipeOutputConfig(FifoOptions, kw_only=True):
    """Write messages to a named pipe (FIFO), one encoded record per line.

    Each batch is written as lines in the entry's `format:` (`json`: the envelope,
    or with `payload_only` the payload) and is confirmed once it is in the pipe. A
    FIFO has no reader until some program opens it: a write then waits up to
    `reader_wait` seconds for one and is retried later (with the pattern's backoff)
    if none came; a reader that goes away (EPIPE) is waited for the same way. Writes
    never block wireway: a full pipe is waited on with the event loop. A FIFO has no
    acknowledgement: lines still in the pipe when its reader goes away are lost.
    """

    payload_only: Annotated[bool, Meta(description="write the payload alone, not the envelope")] = False
    reader_wait: Annotated[
        float, Meta(ge=0, description="seconds a write waits for a reader before it is retried")
    ] = 1.0
