"""Options of the `unix` input and output."""

from __future__ import annotations

import grp
import pwd
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta

from wireway.connectors.framing import StreamClientOptions, StreamServerOptions

SocketKind = Literal["stream", "datagram"]
MAX_PATH = 107  # sun_path holds 108 bytes with the closing NUL


def check_path(path: str) -> None:
    if not path or path.endswith("/"):
        raise ValueError("expected the path of a socket file - at `$.path`")
    if len(path.encode()) > MAX_PATH:
        raise ValueError(f"a socket path is at most {MAX_PATH} bytes - at `$.path`")


def user_id(name: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise ValueError(f"no user `{name}` here - at `$.owner`") from None


def group_id(name: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ValueError(f"no group `{name}` here - at `$.group`") from None


class UnixInputConfig(StreamServerOptions, kw_only=True):
    """Listen on a unix-domain socket file. `socket: stream` (the default) reads each
    client's byte stream as the `tcp` input does: records cut by newlines or by a
    4-byte big-endian length (`framing`), decoded with the entry's `format:`, and
    with `ack: true` an answer `ok N` per batch stored. `socket: datagram` takes
    each datagram as one message (longer than `max_frame_bytes`: dead-lettered).

    The socket file is made with `mode` (e.g. `"660"`) and `owner`/`group` (names
    or ids; changing the owner needs the privilege to). A socket file left by a
    process that died is removed at start: only a socket nobody listens on; any
    other file there, or a live socket, stops the start with an error. The file is
    removed again at stop.
    """

    path: Annotated[str, Meta(description="the socket file (relative to the working directory)")]
    socket: Annotated[SocketKind, Meta(description="`stream` or `datagram`")] = "stream"
    mode: Annotated[str | None, Meta(description='permissions of the socket file, in octal (e.g. "660")')] = (
        None
    )
    owner: Annotated[str | None, Meta(description="user (name or id) to own the socket file")] = None
    group: Annotated[str | None, Meta(description="group (name or id) of the socket file")] = None

    def __post_init__(self) -> None:
        check_path(self.path)
        if self.mode is not None:
            try:
                value = int(self.mode, 8)
            except ValueError:
                value = -1
            if not 0 <= value <= 0o777:
                raise ValueError('expected octal permissions such as "660" - at `$.mode`')
        if self.owner is not None:
            user_id(self.owner)
        if self.group is not None:
            group_id(self.group)
        if self.socket == "datagram" and self.framing != "lines":
            raise ValueError("a datagram is one record: framing is for stream sockets - at `$.framing`")
        if self.socket == "datagram" and self.ack:
            raise ValueError("a datagram socket cannot answer: ack is for stream sockets - at `$.ack`")

    def resources(self, base_dir: Path) -> list[str]:
        return [f"unix socket {Path(self.path).resolve()}"]


class UnixOutputConfig(StreamClientOptions, kw_only=True):
    """Connect to a unix-domain socket file. `socket: stream` (the default) writes
    records as the `tcp` output does (lines or length-prefixed, reconnecting with
    backoff; `await_ack: true` waits for the `ok N` of a wireway `unix` input with
    `ack: true`, else a batch is confirmed once drained to the socket).
    `socket: datagram` sends each message as one datagram, confirmed once the
    kernel has it in the receiver's queue; a message too long for a datagram goes
    to the dead-letter queue.
    """

    path: Annotated[str, Meta(description="the socket file (relative to the working directory)")]
    socket: Annotated[SocketKind, Meta(description="`stream` or `datagram`")] = "stream"

    def __post_init__(self) -> None:
        check_path(self.path)
        super().__post_init__()
        if self.socket == "datagram" and self.framing != "lines":
            raise ValueError("a datagram is one record: framing is for stream sockets - at `$.framing`")
        if self.socket == "datagram" and self.await_ack:
            raise ValueError("nothing answers a datagram: await_ack is for stream sockets - at `$.await_ack`")
