"""Options of the `file` output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class FileOutputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Append one JSON line per message to a file.

    `fsync: batch` (default) syncs the file after every written batch before the
    batch is confirmed, so a confirmed message is on disk; `never` leaves it to
    the OS (faster; a power cut may lose the tail); `always` syncs per message.
    """

    address: Annotated[str, Meta(description="file path, relative to the working directory")]
    payload_only: bool = False
    fsync: Literal["batch", "always", "never"] = "batch"

    def __post_init__(self) -> None:
        if not self.address or self.address.endswith("/"):
            raise ValueError("expected a file path - at `$.address`")

    def resources(self, base_dir: Path) -> list[str]:
        return [f"file {Path(self.address).resolve()}"]
