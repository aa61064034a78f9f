"""wireway's errors.

WirewayError
├── ConfigError          a pattern file is wrong (carries file, line, key path)
├── ConnectorError       something at a connector's edge went wrong
│   ├── NotConnected     the peer is away; the runtime reconnects with backoff
│   ├── RetryableError   this attempt failed; try again later (5xx, timeout)
│   └── PermanentError   retrying cannot help (a 4xx); the message goes to the DLQ
├── ProcessingError      a processor rejected a message (its reasons go to the DLQ)
└── BackpressureError    an outbox is full; the input must slow down
"""

from __future__ import annotations


class WirewayError(Exception):
    """Base of every error wireway raises on purpose."""


class ConfigError(WirewayError):
    """A pattern file is invalid."""

    def __init__(self, message: str, *, file: str = "", line: int = 0, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.path = path

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [p for p in (where, self.path) if p]
        head = " ".join(parts)
        return f"{head}: {self.message}" if head else self.message


class ConnectorError(WirewayError):
    """An error at a connector's edge."""


class NotConnected(ConnectorError):
    """The peer cannot be reached right now."""


class RetryableError(ConnectorError):
    """The attempt failed but a later one may succeed; `retry_after` (seconds) is how
    long the peer asked to be left alone (an HTTP Retry-After): the next attempt
    waits at least that long, whatever the backoff says."""

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """The peer refused the message for good."""


class ProcessingError(WirewayError):
    """A processor rejected a message; `reasons` lists why."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class BackpressureError(WirewayError):
    """An outbox is full; `reason` says why when it is not the queue's own length (the
    buffer file's disk is full, or the file reached `buffer_max_bytes`)."""

    def __init__(self, queue: str, retry_after: float = 1.0, reason: str = "") -> None:
        super().__init__(f"buffer of {queue} is full" + (f": {reason}" if reason else ""))
        self.queue = queue
        self.retry_after = retry_after
        self.reason = reason
