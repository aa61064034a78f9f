"""Options of the `tcp` input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from wireway.connectors.hostport import parse_hostport


class TcpInputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """A TCP server reading newline-delimited JSON (one message per line).

    With `ack: true` the server answers each batch of lines it has read with one
    line `ok N` once those N messages are in their outboxes (or `error ...`), so
    a sender can know what is safe; without it the protocol has no ack.
    """

    address: Annotated[str, Meta(description="host:port to listen on")]
    ack: bool = False
    max_line_bytes: Annotated[int, Meta(ge=64)] = 1024 * 1024

    def __post_init__(self) -> None:
        try:
            parse_hostport(self.address)
        except ValueError:
            raise ValueError("expected host:port - at `$.address`") from None

    def resources(self, base_dir: Path) -> list[str]:
        return [f"tcp port {parse_hostport(self.address)[1]}"]
