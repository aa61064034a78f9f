"""Options of the `exec` input and output."""

from __future__ import annotations

import os
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

LogLevel = Literal["debug", "info", "warning", "error"]


class Backoff(msgspec.Struct, forbid_unknown_fields=True):
    """How long to wait before starting a command again after it exited.

    The delay starts at `initial` and doubles with each exit up to `max`, each wait
    varied by up to `jitter` (a fraction) either way; a run that lasted `reset_after`
    seconds counts as healthy and the next delay is `initial` again. wireway never
    gives up restarting.
    """

    initial: Annotated[float, Meta(gt=0, description="seconds before the first restart")] = 0.5
    max: Annotated[float, Meta(gt=0, description="the longest wait between restarts, in seconds")] = 30.0
    jitter: Annotated[float, Meta(ge=0, le=1, description="fraction by which each wait varies")] = 0.2
    reset_after: Annotated[
        float, Meta(gt=0, description="seconds a run must last for the delay to start over")
    ] = 10.0


class CommandOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """How to start a command (what the `exec` input and output share)."""

    command: Annotated[
        list[str] | str,
        Meta(
            description="the program and its arguments as a list (`[python3, sensor.py, -v]`), "
            "run without a shell; one string only with `shell: true`"
        ),
    ]
    shell: Annotated[
        bool, Meta(description="run `command` (one string) with /bin/sh -c: pipes, globs, `>>`")
    ] = False
    env: Annotated[
        dict[str, str], Meta(description="variables added to wireway's environment for the command")
    ] = {}
    cwd: Annotated[str | None, Meta(description="working folder of the command (default: wireway's)")] = None
    stop_timeout: Annotated[
        float,
        Meta(gt=0, description="seconds between SIGTERM and SIGKILL to the command's process group"),
    ] = 5.0
    backoff: Backoff = msgspec.field(default_factory=Backoff)
    stderr_level: Annotated[
        LogLevel, Meta(description="the level at which the command's stderr lines are logged")
    ] = "warning"

    def __post_init__(self) -> None:
        if self.shell:
            if not isinstance(self.command, str) or not self.command.strip():
                raise ValueError("with `shell: true`, the command is one string - at `$.command`")
        elif isinstance(self.command, str):
            raise ValueError(
                "expected a list like [program, arg, ...] (a command line needs `shell: true`)"
                " - at `$.command`"
            )
        elif not self.command or not self.command[0]:
            raise ValueError("expected the program and its arguments - at `$.command`")
        if self.backoff.max < self.backoff.initial:
            raise ValueError("must not be less than `initial` - at `$.backoff.max`")
        for key in self.env:
            if not key or "=" in key:
                raise ValueError(f"`{key}` cannot be an environment variable name - at `$.env`")

    @property
    def label(self) -> str:
        """The command's name in logs and errors."""
        if isinstance(self.command, str):
            text = self.command.strip()
            return text if len(text) <= 40 else text[:37] + "..."
        return os.path.basename(self.command[0])


class ExecInputConfig(CommandOptions, kw_only=True):
    """Run a command and read its stdout line by line, one message per line.

    Each line is decoded through the entry's `format:`, one that reads lines (`json`
    by default: one JSON value per line; `text` takes each line as a string; `csv`);
    a line that does not decode goes to the DLQ with the reason. The command's stderr
    lines go to wireway's log, with the command's name.

    The command runs in its own process group: at stop it gets SIGTERM, and after
    `stop_timeout` seconds SIGKILL, and so does anything it started, so no process is
    left behind. When it exits, `restart` says what happens: `always` starts it
    again, `on-failure` only after a non-zero exit, `no` never; the waits between
    restarts grow as `backoff` says, and wireway never gives up. An input that will
    not restart has finished: once every input of every pattern has, wireway stops.
    """

    restart: Annotated[
        Literal["always", "on-failure", "no"],
        Meta(description="when to start the command again after it exits"),
    ] = "always"
    max_line_bytes: Annotated[
        int, Meta(ge=64, description="the longest line read; a longer one goes to the DLQ")
    ] = 1024 * 1024


class ExecOutputConfig(CommandOptions, kw_only=True):
    """Hand messages to a command, one encoded record per line on its stdin.

    By default one long-running command gets every message: each batch is written
    to its stdin as lines in the entry's `format:` (`json`: the envelope, or with
    `payload_only` the payload) and is confirmed once the command's stdin took it.
    When the command exits it is started again (see `backoff`); meanwhile, and when
    a write finds it gone, the batch is retried. Lines still in the pipe when the
    command exits are lost: a command meant to be restarted reads its stdin to the end.
    At stop its stdin is closed and it has `stop_timeout` seconds to finish on its
    own before SIGTERM (and as long again before SIGKILL).

    With `per_message: true` the command runs once per message instead, with the
    record on its stdin and in its environment: `WIREWAY_MESSAGE_ID`,
    `WIREWAY_PAYLOAD` (the payload as JSON, left out above 64 KiB: read stdin then),
    `WIREWAY_SOURCE`, `WIREWAY_MESSAGE_TYPE`, `WIREWAY_TIMESTAMP`,
    `WIREWAY_CORRELATION_ID` and `WIREWAY_RETRY_COUNT`. Exit code 0 confirms the
    message; a code listed in `dead_letter_codes` sends it to the DLQ; any other
    code, or running longer than `timeout`, retries the batch (so a command may see
    a message again: `WIREWAY_MESSAGE_ID` tells repeats apart).
    The command's stdout lines are logged at debug level, its stderr lines at
    `stderr_level`.
    """

    per_message: Annotated[bool, Meta(description="run the command once per message")] = False
    payload_only: Annotated[bool, Meta(description="write the payload alone, not the envelope")] = False
    timeout: Annotated[
        float, Meta(gt=0, description="per_message: seconds a run may take before it is killed and retried")
    ] = 30.0
    dead_letter_codes: Annotated[
        list[int], Meta(description="per_message: exit codes that send the message to the DLQ, not retry it")
    ] = []

    def __post_init__(self) -> None:
        super().__post_init__()
        for code in self.dead_letter_codes:
            if not 1 <= code <= 255:
                raise ValueError(f"{code} is not a failing exit code (1 to 255) - at `$.dead_letter_codes`")
