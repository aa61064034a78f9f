"""Options of the `stdin` input."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class StdinInputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Read wireway's standard input line by line, one message per line, until it ends.

    Each line is decoded through the entry's `format:`, one that reads lines (`json`
    by default: one JSON value per line; `text`, `csv`); a line that does not decode
    goes to the DLQ with the reason.
    At the end of the input the entry has finished: once every input of every
    pattern has, wireway delivers what it holds and exits, so
    `producer | wireway run pattern.yaml` ends when the producer does. Standard input
    may be a pipe, a terminal or a file (`wireway run pattern.yaml < readings.jsonl`).
    """

    fd: Annotated[
        int,
        Meta(
            ge=0,
            description="the file descriptor to read: 0 is standard input; another is one the "
            "parent process handed down (`wireway run p.yaml 3< readings.jsonl`)",
        ),
    ] = 0
    max_line_bytes: Annotated[
        int, Meta(ge=64, description="the longest line read; a longer one goes to the DLQ")
    ] = 1024 * 1024
