"""`mode: tail`: follow one file, the newest of a glob, or all of them."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import msgspec

from wireway.connectors.file.follow import Follower, key_of, load_position, slot
from wireway.connectors.file.records import Errors, Shaper, dropped
from wireway.connectors.file.watch import Watcher, absolute, is_glob, matches, mtime
from wireway.observability import logging as log

if TYPE_CHECKING:
    from wireway.connectors.base import InputContext
    from wireway.connectors.file.config import FileInputConfig
    from wireway.formats.codec import Codec

logger = log.get("file")
encode = msgspec.json.encode
FILES_KEY = "files"  # the files being followed, so a restart finds one renamed meanwhile
PRIME_LINES = 100  # lines from a file's start fed to its codec before resuming (a csv header)


class Tail:
    """Reads the followed files one chunk (one ingest call) at a time."""

    def __init__(self, config: FileInputConfig, name: str, ctx: InputContext, new_codec: Any) -> None:
        self.config = config
        self.name = name
        self.ctx = ctx
        self.new_codec = new_codec
        self.pattern = absolute(config.path)
        self.newest = is_glob(self.pattern) and not config.all
        # one file at a time, the oldest first, unless all matches are followed at once
        self.in_turn = not (is_glob(self.pattern) and config.all)
        self.shaper = Shaper(name, config.file_field, config.line_field)
        self.watcher = Watcher(self.pattern, name, config.poll_interval, config.linger)
        self.followers: list[Follower] = []  # oldest first
        self.codecs: dict[str, Codec] = {}
        self.seen: set[str] = set()  # files followed in this run (newest mode never goes back)
        self.unsaved: list[Follower] = []  # followed, their position not stored yet
        self.first_run = True
        self.last_check = 0.0

    # ----- which files --------------------------------------------------------------
    async def begin(self) -> None:
        record = self.ctx.position(slot(self.name, FILES_KEY))
        self.first_run = record is None
        found = matches(self.pattern)
        here = {self._identity(p): p for p in found}
        # files followed when the last run stopped that have moved away: read them to the end
        for path, dev, ino in msgspec.json.decode(record) if record else []:
            if (dev, ino) not in here:
                moved = _find_inode(os.path.dirname(path), dev, ino)
                if moved is not None:
                    self._add(moved, at_end=False, leaving=True)
        if self.newest:
            if found:
                newest = max(found, key=lambda p: (mtime(p), p))
                followed = {(dev, ino) for _, dev, ino in msgspec.json.decode(record)} if record else set()
                for path in sorted(found, key=mtime):  # unfinished older files first
                    if path != newest and self._identity(path) in followed:
                        self._add(path, at_end=False, leaving=True)
                self._add(newest, at_end=self._skip_existing())
        else:
            for path in found:
                self._add(path, at_end=self._skip_existing())
        self.watcher.listing = False
        self.watcher.start()
        await self.save_files()

    def _skip_existing(self) -> bool:
        return self.first_run and self.config.start == "end"

    @staticmethod
    def _identity(path: str) -> tuple[int, int]:
        try:
            st = os.stat(path)
        except OSError:
            return (-1, -1)
        return st.st_dev, st.st_ino

    def _add(self, path: str, at_end: bool, leaving: bool = False, resume: bool = True) -> Follower | None:
        """Follow `path`; with `resume`, from its stored position. A file that appears
        while the input runs is new: what is stored for its inode belongs to a file
        that had it before."""
        key = key_of(*self._identity(path))
        for f in self.followers:
            if f.key == key:
                f.path = path
                return f
        stored = self.ctx.position(slot(self.name, key)) if resume else None
        try:
            f = Follower.open(path, at_end, stored)
        except OSError as exc:  # gone between the listing and now
            logger.debug("file went away", input=self.name, file=path, error=exc.strerror)
            return None
        self.codecs[f.key] = codec = self.new_codec()
        if f.offset > 0 and codec.lines:
            self._prime(f, codec)
        self.followers.append(f)
        self.seen.add(f.key)
        if stored is None or f.offset == 0:
            self.unsaved.append(f)
        if leaving:
            f.leaving = time.monotonic()
        logger.info("following file", input=self.name, file=path, offset=f.offset)
        return f

    def _prime(self, f: Follower, codec: Codec) -> None:
        """Show the codec the file's first lines (a csv header row) before resuming."""
        head = os.pread(f.fd, min(f.offset, 1 << 20), 0)
        for line in head.split(b"\n")[:PRIME_LINES]:
            if codec.decode_line(line.removesuffix(b"\r")) is not None:
                break

    async def save_files(self) -> None:
        # a new file's generation (its messages' ids) is stored before the outputs may
        # see its first lines, so lines read again after a crash keep their ids
        for f in self.unsaved:
            await self.ctx.ingest([], source=self.name, position=(slot(self.name, f.key), f.position()))
        self.unsaved.clear()
        files = [[f.path, f.dev, f.ino] for f in self.followers]
        await self.ctx.ingest([], source=self.name, position=(slot(self.name, FILES_KEY), encode(files)))

    async def check(self, listing: bool) -> bool:
        """Truncation, rotation, replacement, new files and finished old ones; True
        when there may be something to read at once."""
        now = time.monotonic()
        changed = again = False
        for f in list(self.followers):
            if f.truncated():
                self._restarted(f)
                again = True
            if not f.leaving and self._identity(f.path) != (f.dev, f.ino):
                f.leaving = now  # renamed away, replaced or deleted: read on to its end
                listing = True
                logger.info("file moved or replaced", input=self.name, file=f.path)
            if f.leaving and f.idle_since and now - max(f.leaving, f.idle_since) >= self.config.rotate_wait:
                self.followers.remove(f)
                self.codecs.pop(f.key, None)
                f.close()
                changed = True
        if listing:
            changed |= self._look()
        if changed or again:
            await self.save_files()
        return changed or again

    def _look(self) -> bool:
        found = matches(self.pattern)
        by_key = {f.key: f for f in self.followers}
        for path in found:  # a followed file renamed to another matching name: still followed
            f = by_key.get(key_of(*self._identity(path)))
            if f is not None and f.path != path:
                f.path, f.leaving = path, 0.0
        if not self.newest:
            new = [p for p in found if key_of(*self._identity(p)) not in by_key]
            added = [self._add(path, at_end=False, resume=False) for path in new]  # all of them
            return any(f is not None for f in added)
        fresh = [p for p in found if key_of(*self._identity(p)) not in self.seen]
        if not fresh:
            return False
        newest = max(fresh, key=lambda p: (mtime(p), p))
        current = self.followers[-1] if self.followers else None
        if current is not None and not current.leaving and mtime(newest) < mtime(current.path):
            return False
        if self._add(newest, at_end=False, resume=False) is None:
            return False
        for f in self.followers[:-1]:
            f.leaving = f.leaving or time.monotonic()
        logger.info("newer file, switching", input=self.name, file=newest)
        return True

    # ----- reading ------------------------------------------------------------------
    async def pump(self) -> bool:
        """One chunk of each file with news (only the oldest such in newest mode)."""
        progressed = False
        for f in list(self.followers):
            if await self.pump_one(f):
                progressed = True
                if self.in_turn:
                    break
        return progressed

    async def pump_one(self, f: Follower) -> bool:
        max_line = self.config.max_line_bytes
        if f.idle_since and f.truncated():  # news after a pause: first, is it the same file?
            self._restarted(f)
            await self.save_files()
        before = f.offset
        got = f.read(max_line)
        # bytes of an over-long line skipped are progress: its position is stored
        if got is None or (not got[0] and not f.dropped and f.offset == before):
            if not f.idle_since:
                f.idle_since = time.monotonic()
            return False
        f.idle_since = 0.0
        lines, first = got
        codec = self.codecs[f.key]
        values, errors = self.shaper.lines(codec, lines, first, f.path, f.gen, max_line)
        if f.dropped:
            errors += dropped(f.dropped, f.path, max_line)
        await self.send(f, values, errors)
        return True

    async def run(self) -> None:
        await self.begin()
        while True:
            if await self.pump():
                continue
            now = time.monotonic()
            listing = self.watcher.listing or now - self.last_check >= self.config.poll_interval
            self.watcher.listing = False
            self.last_check = now if listing else self.last_check
            if await self.check(listing):
                continue
            wait = self.config.poll_interval
            if any(f.leaving for f in self.followers):
                wait = min(wait, max(self.config.rotate_wait, 0.05))
            await self.watcher.wait(wait)

    def _restarted(self, f: Follower) -> None:
        logger.info("file truncated, reading it from its start", input=self.name, file=f.path)
        self.codecs[f.key] = self.new_codec()
        self.unsaved.append(f)  # its new generation

    async def send(self, f: Follower, values: list[Any], errors: Errors) -> None:
        """Hand in a batch with the file's position, committed together."""
        position = (slot(self.name, f.key), f.position())
        await self.ctx.ingest(values, source=self.name, errors=errors, position=position)

    async def close(self) -> None:
        await self.watcher.stop()
        for f in self.followers:
            f.close()
        self.followers.clear()


def _find_inode(folder: str, dev: int, ino: int) -> str | None:
    """The file in `folder` that is this inode (a log renamed by its rotation)."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.inode() == ino and entry.is_file() and entry.stat().st_dev == dev:
                    return entry.path
    except OSError:
        return None
    return None


__all__ = ["Tail", "load_position"]
