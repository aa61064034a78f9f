"""Options of the `stdout` output."""

from __future__ import annotations

import msgspec


class StdoutOutputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Print one JSON line per message on standard output (for trying patterns out)."""

    payload_only: bool = False
