"""Options of the `file` input and output."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FileInputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Read files: follow them as they grow (`mode: tail`) or take each new file whole.

    **tail** (the default) follows `path`, a file or a glob (`logs/*.log`). With a
    glob it follows the newest matching file (by modification time) and switches
    when a newer one appears, after reading the old one to its end: a program that
    starts a new file per run (Kismet) is followed across runs. With `all: true` it
    follows every matching file at once. Each file is read as lines; each line is
    decoded with the entry's `format:` (default `json`; `jsonl`, `csv`, `text`...),
    and a line that cannot be decoded goes to the dead-letter queue with its file
    and line number. A last line without its newline waits for it. A line longer
    than `max_line_bytes` goes to the dead-letter queue (its file and line number,
    not its bytes) as soon as it is that long, and is skipped up to its newline.

    The read position (the file's device and inode, a fingerprint of its first
    bytes, and the byte offset) is committed in the same transaction as the
    messages of the lines it covers, so a crash or `kill -9` neither loses a line
    nor reads again more than the last batch not yet committed; messages read
    again carry the same `messageId` (a `dedupe` step drops them). A file renamed
    away (log rotation) or replaced by a new one is read to its end, then the new
    file at the path from its beginning; a truncated file is read again from its
    start. `start` applies only to files present when the input first runs; files
    that appear later are always read from their beginning. Changes are noticed
    through inotify where the system has it (polling otherwise), and the files
    are also checked every `poll_interval` seconds.

    **whole** takes each file matching `path` as one unit once it has stopped
    changing (size and modification time the same for `settle` seconds): one
    message per file, or one per line or row with a lines format (`jsonl`, `csv`,
    `text`). Once its messages are in their outboxes the file is moved to the
    `done` folder (`after: move`, the default) or deleted (`after: delete`); a
    file with a record that could not be decoded (those records go to the
    dead-letter queue, the others are delivered) or that could not be read is
    moved to the `failed` folder instead, whatever `after` says. The folders are
    relative to each file's own folder and made when needed.

    Messages carry the input's name as `source`. To route on the file, set
    `file_field` (and `line_field`): an object payload gets the file's path (and
    the line number) under that key; any other payload becomes
    `{"value": payload, ...}`.
    """

    path: Annotated[str, Meta(description="a file, or a glob of files (`*`, `?`, `[ab]`, `**`)")]
    mode: Annotated[
        Literal["tail", "whole"],
        Meta(description="`tail`: follow files as they grow; `whole`: each file once, as a unit"),
    ] = "tail"
    start: Annotated[
        Literal["beginning", "end"],
        Meta(description="tail: where to start in a file present at the first run"),
    ] = "beginning"
    all: Annotated[
        bool, Meta(description="tail, with a glob: follow every matching file, not only the newest")
    ] = False
    settle: Annotated[
        float, Meta(ge=0, description="whole: seconds a file must stay unchanged before it is read")
    ] = 1.0
    after: Annotated[
        Literal["move", "delete"],
        Meta(description="whole: what happens to a file once its messages are stored"),
    ] = "move"
    done: Annotated[str, Meta(description="whole: folder read files move to (`after: move`)")] = "done"
    failed: Annotated[str, Meta(description="whole: folder files that could not be read move to")] = "failed"
    max_bytes: Annotated[
        int, Meta(ge=1, description="whole: largest file read as one unit (not lines formats)")
    ] = 64 * 1024 * 1024
    max_line_bytes: Annotated[
        int, Meta(ge=64, description="a longer line is skipped, dead-lettered by its number")
    ] = 1024 * 1024
    file_field: Annotated[
        str | None, Meta(description="payload key that gets the file's path (none by default)")
    ] = None
    line_field: Annotated[
        str | None, Meta(description="payload key that gets the line number (none by default)")
    ] = None
    rotate_wait: Annotated[
        float,
        Meta(ge=0, description="tail: seconds a file renamed away stays followed once it stops growing"),
    ] = 1.0
    poll_interval: Annotated[
        float, Meta(gt=0, description="seconds between checks that do not wait for a change event")
    ] = 1.0
    linger: Annotated[
        float,
        Meta(
            ge=0.001,
            le=0.05,
            description="seconds without a further change the input waits for before it "
            "reads what changed (0.05 s at the most while a file keeps changing): at a low "
            "rate, fewer and fuller batches (far less CPU per line) for up to twice this "
            "much latency",
        ),
    ] = 0.005

    def __post_init__(self) -> None:
        if not self.path or self.path.endswith("/"):
            raise ValueError("expected a file path or a glob - at `$.path`")
        for key in ("file_field", "line_field"):
            value = getattr(self, key)
            if value is not None and not _FIELD.match(value):
                raise ValueError(f"expected a plain key (letters, digits, _) - at `$.{key}`")
        for key in ("done", "failed"):
            if not getattr(self, key):
                raise ValueError(f"expected a folder - at `$.{key}`")


class FileOutputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Write messages to files, in any `format:` (default: one JSON document per line).

    **append** (the default) appends each message as one record and a newline to
    `address` (`msgpack` and `binary` records go back to back, without newlines).
    The format's header (a `csv` header row) starts each new file.
    `fsync: batch` (default) syncs the file after every written batch before the
    batch is confirmed, so a confirmed message is on disk; `never` leaves it to
    the OS (faster; a power cut may lose the tail); `always` syncs per message.

    With `rotate_bytes` or `rotate_seconds` the file is closed and a new one begun
    once it is that big or that old. Its name then comes from `address` as a
    template: `{date}` (20261204, UTC), `{time}` (142109, UTC), `{n}` (a counter)
    and `{ts}` (seconds since the epoch); without a placeholder `-{n}` is added
    before the extension (`out.jsonl` -> `out-1.jsonl`, `out-2.jsonl`...). `{n}`
    moves past names that exist, so a restart begins a new file; a name without
    `{n}` that exists is appended to. Size and age are checked before each batch.

    **whole** writes each message to a file of its own named by the `address`
    template (`{id}` is the messageId; `{n}` counts; `{date}`, `{time}`, `{ts}`):
    written under a temporary name in the same folder, synced, then renamed, so a
    reader never sees half a file; an existing file of that name is replaced.
    """

    address: Annotated[str, Meta(description="file path or name template, relative to the working directory")]
    payload_only: Annotated[bool, Meta(description="write the payload only, not the envelope")] = False
    fsync: Annotated[
        Literal["batch", "always", "never"],
        Meta(description="sync to disk after each batch, after each message, or never"),
    ] = "batch"
    mode: Annotated[
        Literal["append", "whole"],
        Meta(description="`append`: records to a file; `whole`: a file per message"),
    ] = "append"
    rotate_bytes: Annotated[
        Annotated[int, Meta(ge=1)] | None, Meta(description="begin a new file at this size")
    ] = None
    rotate_seconds: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(description="begin a new file once the current one is this old"),
    ] = None

    def __post_init__(self) -> None:
        if not self.address or self.address.endswith("/"):
            raise ValueError("expected a file path - at `$.address`")
        try:
            self.address.format(date="", time="", n=0, ts=0, id="")
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                "unknown placeholder: use {date}, {time}, {n}, {ts} or {id} - at `$.address`"
            ) from None
        if self.mode == "whole" and (self.rotate_bytes or self.rotate_seconds):
            raise ValueError("rotation is for `mode: append` - at `$.rotate_bytes`")
        if self.mode == "append" and "{id}" in self.address:
            raise ValueError("{id} names a file per message: use it with `mode: whole` - at `$.address`")
        if self.rotate_bytes and "{" in self.address and "{n}" not in self.address:
            raise ValueError("rotating by size needs {n} in the name - at `$.address`")
        if self.mode == "whole" and "{" not in self.address:
            raise ValueError("`mode: whole` needs a name template such as {id} or {n} - at `$.address`")

    def resources(self, base_dir: Path) -> list[str]:
        return [f"file {Path(self.address).resolve()}"]
