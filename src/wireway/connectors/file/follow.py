"""One followed file: its identity, where it has been read up to, and its next lines."""

from __future__ import annotations

import hashlib
import os

import msgspec

from wireway.envelope import new_message_id

CHUNK = 256 * 1024  # bytes read at once: a batch of lines for one ingest call
HEAD = 256  # bytes of a file's beginning that tell it from another file with its inode


class Position(msgspec.Struct, forbid_unknown_fields=False):
    """What is stored with the messages: which file, and how far it is read."""

    path: str
    dev: int
    ino: int
    offset: int  # bytes up to the end of the last line handed in
    line: int  # lines up to there
    head: str  # hash of the file's first `head_len` bytes
    head_len: int
    gen: str  # made when the file is first seen; the messages' ids derive from it
    skipping: bool = False  # `offset` is inside an over-long line, dropped up to its newline


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Position).decode


def key_of(dev: int, ino: int) -> str:
    return f"file:{dev}:{ino}"


def slot(input_name: str, key: str) -> str:
    """The stored key: the runtime keys positions by pattern, two inputs of one
    pattern may follow the same file."""
    return f"{input_name}|{key}"


def head_of(fd: int, length: int) -> tuple[str, int]:
    data = os.pread(fd, min(length, HEAD), 0)
    return hashlib.blake2b(data, digest_size=8).hexdigest(), len(data)


def load_position(raw: bytes | None) -> Position | None:
    if raw is None:
        return None
    try:
        return _decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class Follower:
    """An open file read line by line from a position.

    `offset` is where the last handed-in line ended; `rest` holds a last line still
    waiting for its newline. The file stays open after a rename or unlink, so what
    its writer still adds is read as well.
    """

    def __init__(
        self, path: str, fd: int, offset: int, line: int, gen: str | None = None, skipping: bool = False
    ) -> None:
        st = os.fstat(fd)
        self.path = path
        self.fd = fd
        self.dev, self.ino = st.st_dev, st.st_ino
        self.key = key_of(self.dev, self.ino)
        self.offset = offset
        self.line = line
        self.rest = b""
        self.gen = gen or new_message_id()
        self.head, self.head_len = head_of(fd, max(offset, HEAD))
        self.leaving = 0.0  # when it was renamed away or replaced (0: it is at its path)
        self.idle_since = 0.0  # when it was last found at its end without news
        self.skipping = skipping  # in the middle of an over-long line
        self.dropped: list[int] = []  # numbers of over-long lines skipped, to report

    @classmethod
    def open(cls, path: str, start_at_end: bool, stored: bytes | None) -> Follower:
        """Open `path`, resuming from the stored position when it is this very file."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            pos = load_position(stored)
            if pos is not None and (pos.dev, pos.ino) == (st.st_dev, st.st_ino):
                head, length = head_of(fd, pos.head_len)
                if length == pos.head_len and head == pos.head and st.st_size >= pos.offset:
                    return cls(path, fd, pos.offset, pos.line, pos.gen, pos.skipping)
                # another file on a reused inode, or this one truncated: from the start
                return cls(path, fd, 0, 0)
            if start_at_end:
                return cls(path, fd, st.st_size, _count_lines(fd, st.st_size))
            return cls(path, fd, 0, 0)
        except BaseException:
            os.close(fd)
            raise

    def position(self) -> bytes:
        if self.head_len < HEAD and self.offset > self.head_len:
            self.head, self.head_len = head_of(self.fd, self.offset)
        return _encode(
            Position(
                self.path,
                self.dev,
                self.ino,
                self.offset,
                self.line,
                self.head,
                self.head_len,
                self.gen,
                self.skipping,
            )
        )

    def truncated(self) -> bool:
        """The file is now shorter than what was read of it, or its first bytes are
        not the ones read (cut and written again meanwhile): start again at 0."""
        if os.fstat(self.fd).st_size >= self.offset + len(self.rest) and (
            not self.head_len or head_of(self.fd, self.head_len) == (self.head, self.head_len)
        ):
            return False
        self.offset = self.line = self.head_len = 0
        self.rest = b""
        self.head = ""
        self.skipping = False
        self.gen = new_message_id()  # new lines, new ids
        return True

    def read(self, max_line: int) -> tuple[list[bytes], int] | None:
        """The next complete lines (without newlines) and the line number of the
        first; None at the end of the file. A line longer than `max_line` with no
        newline in sight goes to `dropped` at once (its newline may never come) and
        its bytes are skipped, without being kept, up to its newline."""
        if self.skipping:
            return self._skip_long()
        chunk = os.pread(self.fd, CHUNK, self.offset + len(self.rest))
        if not chunk:
            return None
        data = self.rest + chunk if self.rest else chunk
        cut = data.rfind(b"\n")
        lines: list[bytes] = []
        first = self.line + 1
        if cut >= 0:
            lines = data[:cut].split(b"\n")
            data = data[cut + 1 :]
            self.offset += cut + 1
            self.line += len(lines)
        self.rest = data
        if len(data) > max_line:  # a line too long, its newline not here yet
            self.skipping = True
            self.dropped.append(self.line + 1)
            self.offset += len(data)
            self.rest = b""
            if not lines:
                return self._skip_long()
        return lines, first

    def _skip_long(self) -> tuple[list[bytes], int] | None:
        """Drop the bytes of an over-long line up to its newline; None when nothing
        new came since the last call."""
        start = at = self.offset + len(self.rest)
        while True:
            chunk = os.pread(self.fd, CHUNK, at)
            if not chunk:  # no newline yet: keep waiting, without keeping the bytes
                self.rest = b""
                self.offset = at
                if at == start and not self.dropped:
                    return None
                return [], self.line + 1
            cut = chunk.find(b"\n")
            if cut >= 0:
                self.offset = at + cut + 1
                self.rest = b""
                self.line += 1
                self.skipping = False
                return [], self.line + 1
            at += len(chunk)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _count_lines(fd: int, size: int) -> int:
    count, at = 0, 0
    while at < size:
        chunk = os.pread(fd, 1 << 20, at)
        if not chunk:
            break
        count += chunk.count(b"\n")
        at += len(chunk)
    return count
