"""The `file` output: records appended to a file (rotated by size or age), or one
file per message written atomically."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from wireway import formats
from wireway.connectors.base import Output
from wireway.connectors.file.config import FileOutputConfig
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.formats.codec import Codec
from wireway.registry import register_output

FAST = ("json", "jsonl")  # one JSON document per line: encoded a batch at a time
BACK_TO_BACK = ("msgpack", "binary")  # records that carry their own length, or raw bytes


def template_of(config: FileOutputConfig) -> str:
    """The name template: `address`, with `-{n}` before the extension when the file
    rotates and `address` has no placeholder."""
    address = config.address
    rotates = config.rotate_bytes is not None or config.rotate_seconds is not None
    if rotates and "{" not in address:
        path = Path(address)
        return str(path.with_name(f"{path.stem}-{{n}}{path.suffix}"))
    return address


def name_for(template: str, n: int, msg_id: str = "") -> str:
    now = time.gmtime()
    day, clock = time.strftime("%Y%m%d", now), time.strftime("%H%M%S", now)
    return template.format(date=day, time=clock, n=n, ts=int(time.time()), id=msg_id)


@register_output("file", config=FileOutputConfig)
class FileOutput(Output):
    """Write each message as one record of the entry's `format:` (default: a JSON line)."""

    formats = None
    fd: int | None = None

    async def open(self) -> None:
        self.template = template_of(self.config)
        self.counted = "{n}" in self.template
        self.n = 1
        self.fast = self.iface.format in FAST
        self.end = b"" if self.iface.format in BACK_TO_BACK else b"\n"
        self.codec: Codec = self.iface.new_codec()
        if self.config.mode == "append" and "{" not in self.template:
            self._open_file()  # a plain file: a wrong path shows at start

    # ----- append ---------------------------------------------------------------------
    def _free(self, msg_id: str = "") -> str:
        """The next name of the template; `{n}` moves past names that exist."""
        while True:
            path = name_for(self.template, self.n, msg_id)
            if not self.counted or not os.path.exists(path):
                return path
            self.n += 1

    def _open_file(self) -> None:
        path = Path(self._free())
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.path = path
        self.size = os.fstat(self.fd).st_size
        self.opened = time.monotonic()
        self.codec = self.iface.new_codec()  # a csv header row per file
        self.fresh = self.size == 0

    def _rotate_due(self) -> bool:
        config = self.config
        if config.rotate_bytes is not None and self.size >= config.rotate_bytes:
            return True
        return config.rotate_seconds is not None and time.monotonic() - self.opened >= config.rotate_seconds

    def _write(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)
        if self.config.fsync != "never":
            os.fsync(self.fd)

    def _encode(self, batch: list[Message]) -> tuple[bytes, dict[int, str]]:
        """The batch's records, and the messages the format cannot carry."""
        payload_only = self.config.payload_only
        if self.fast:
            return formats.encode_lines(batch, payload_only), {}
        parts: list[bytes] = []
        refused: dict[int, str] = {}
        encode = self.codec.encode
        for i, msg in enumerate(batch):
            try:
                parts.append(encode(msg, payload_only) + self.end)
            except ValueError as exc:
                refused[i] = f"format {self.iface.format}: {exc}"
        return b"".join(parts), refused

    def _append(self, batch: list[Message]) -> dict[int, str]:
        if self.fd is None or self._rotate_due():
            self._close()
            self._open_file()
        head = b""
        if self.fresh:
            head = self.codec.header(batch[0])
            self.fresh = False
        data, refused = self._encode(batch)
        if self.config.fsync == "always" and not refused:
            self._write(head)
            for msg in batch:
                self._write(self._encode([msg])[0])
        else:
            self._write(head + data)
        return refused

    # ----- whole ----------------------------------------------------------------------
    def _whole(self, batch: list[Message]) -> dict[int, str]:
        """Each message to a file of its own: a temporary name, synced, renamed."""
        refused: dict[int, str] = {}
        folders: set[str] = set()
        sync = self.config.fsync != "never"
        for i, msg in enumerate(batch):
            codec = self.iface.new_codec()
            try:
                body = codec.encode(msg, self.config.payload_only)
            except ValueError as exc:
                refused[i] = f"format {self.iface.format}: {exc}"
                continue
            data = codec.header(msg) + body + (b"\n" if codec.lines else b"")
            path = Path(self._free(msg.message_id))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            folders.add(str(path.parent))
            self.n += 1
        if sync:  # the renames themselves are durable once their folders are synced
            for folder in folders:
                dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        return refused

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        work = self._whole if self.config.mode == "whole" else self._append
        try:
            refused = await asyncio.to_thread(work, batch)
        except OSError as exc:
            raise RetryableError(f"cannot write {self.config.address}: {exc.strerror}") from exc
        return refused or None

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    async def close(self) -> None:
        self._close()
