"""`mode: whole`: each file that appears, once it has settled, as one unit."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from wireway.connectors.file.follow import CHUNK, Follower, key_of, slot
from wireway.connectors.file.records import Errors, Shaper, dropped
from wireway.connectors.file.watch import Watcher, absolute, matches
from wireway.observability import logging as log

if TYPE_CHECKING:
    from wireway.connectors.base import InputContext
    from wireway.connectors.file.config import FileInputConfig

logger = log.get("file")


class Whole:
    """Watches for files, waits for each to settle, ingests it, then moves or deletes it."""

    def __init__(self, config: FileInputConfig, name: str, ctx: InputContext, new_codec: Any) -> None:
        self.config = config
        self.name = name
        self.ctx = ctx
        self.new_codec = new_codec
        self.pattern = absolute(config.path)
        self.shaper = Shaper(name, config.file_field, config.line_field)
        self.watcher = Watcher(self.pattern, name, config.poll_interval, config.linger)
        self.seen: dict[str, tuple[int, float, float]] = {}  # path -> size, mtime, since

    def candidates(self) -> list[str]:
        out = []
        for path in matches(self.pattern):
            folder = os.path.dirname(path)
            parents = {os.path.basename(folder), os.path.basename(os.path.dirname(folder))}
            if self.config.done in parents or self.config.failed in parents:
                continue  # a file already handled, when the glob reaches into done/
            out.append(path)
        return out

    async def run(self) -> None:
        self.watcher.start()
        settle = self.config.settle
        while True:
            now = time.monotonic()
            wait = self.config.poll_interval
            paths = self.candidates()
            for path in list(self.seen):
                if path not in paths:
                    del self.seen[path]
            for path in paths:
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                state = (st.st_size, st.st_mtime)
                before = self.seen.get(path)
                if before is None or before[:2] != state:
                    self.seen[path] = (*state, now)
                    wait = min(wait, settle)
                    continue
                left = settle - (now - before[2])
                if left > 0:
                    wait = min(wait, left)
                    continue
                del self.seen[path]
                await self.take(path)
                wait = 0
            if wait > 0:
                await self.watcher.wait(max(wait, 0.01))

    async def take(self, path: str) -> None:
        """Ingest one settled file, then move it to done/ or failed/, or delete it."""
        try:
            st = os.stat(path)
            # a settled file does not change: its size and mtime tell it from a later
            # file on the same inode (one deleted after it was read)
            key = f"{key_of(st.st_dev, st.st_ino)}:{st.st_size}:{st.st_mtime_ns}"
            # read before (a crash between its commit and its move): only the rest
            stored = self.ctx.position(slot(self.name, key))
            f = Follower.open(path, False, stored)
            f.key = key
        except OSError as exc:
            logger.warning("cannot open file", input=self.name, file=path, error=exc.strerror)
            self.finish(path, failed=True)
            return
        try:
            codec = self.new_codec()
            size = os.fstat(f.fd).st_size
            if codec.lines:
                failed = await self._lines(f, codec)
            elif f.offset < size or stored is None:
                failed = await self._unit(f, codec, size)
            else:
                failed = False
        except OSError as exc:
            logger.warning("cannot read file", input=self.name, file=path, error=exc.strerror)
            failed = True
        finally:
            f.close()
        self.finish(path, failed)

    async def _lines(self, f: Follower, codec: Any) -> bool:
        failed = False
        max_line = self.config.max_line_bytes
        while True:
            got = f.read(max_line)
            if got is None:
                break
            lines, first = got
            values, errors = self.shaper.lines(codec, lines, first, f.path, f.gen, max_line)
            errors += dropped(f.dropped, f.path, max_line)
            failed |= bool(errors)
            if values or errors:
                await self.send(f, values, errors)
        if f.rest:  # the last line without its newline is a line all the same
            f.rest += b"\n"
            values, errors = self.shaper.lines(codec, [f.rest[:-1]], f.line + 1, f.path, f.gen, max_line)
            f.offset += len(f.rest) - 1
            f.line += 1
            f.rest = b""
            failed |= bool(errors)
            await self.send(f, values, errors)
        return failed

    async def _unit(self, f: Follower, codec: Any, size: int) -> bool:
        if size > self.config.max_bytes:
            logger.warning("file too big", input=self.name, file=f.path, bytes=size)
            return True
        chunks = []
        at = 0
        while at < size:
            chunk = os.pread(f.fd, CHUNK * 4, at)
            if not chunk:
                break
            chunks.append(chunk)
            at += len(chunk)
        try:
            records = codec.decode(b"".join(chunks))
        except Exception as exc:  # noqa: BLE001 - a format's own failure
            records = []
            errors: list[tuple[Any, str]] = [({"file": f.path}, f"{f.path}: {exc}")]
        else:
            errors = []
        values, bad = self.shaper.records(records, f.path, f.gen)
        errors += bad
        f.offset = at
        await self.send(f, values, errors)
        return bool(errors)

    def finish(self, path: str, failed: bool) -> None:
        try:
            if failed or self.config.after == "move":
                folder = self.config.failed if failed else self.config.done
                target_dir = os.path.join(os.path.dirname(path), folder)
                os.makedirs(target_dir, exist_ok=True)
                os.replace(path, _free_name(os.path.join(target_dir, os.path.basename(path))))
            else:
                os.unlink(path)
        except OSError as exc:
            logger.error("cannot move or delete file", input=self.name, file=path, error=exc.strerror)

    async def send(self, f: Follower, values: list[Any], errors: Errors) -> None:
        """Hand in a batch with the file's position, committed together."""
        position = (slot(self.name, f.key), f.position())
        await self.ctx.ingest(values, source=self.name, errors=errors, position=position)

    async def close(self) -> None:
        await self.watcher.stop()


def _free_name(path: str) -> str:
    """`path`, or `path.1`, `path.2`... when a file of that name is there already."""
    if not os.path.exists(path):
        return path
    for n in range(1, 100_000):
        candidate = f"{path}.{n}"
        if not os.path.exists(candidate):
            return candidate
    return f"{path}.{time.time_ns()}"
