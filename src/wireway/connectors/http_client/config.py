"""Options of the `http_client` output."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from wireway.connectors.signing import WIREWAY_TIMESTAMP

# `{payload.device_id}`, `{messageId}`: a field of the message on the wire
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*")
ENVELOPE = frozenset(
    ("messageId", "timestamp", "payload", "source", "destination", "messageType", "version", "metadata")
)


class HmacOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Sign each request so the receiver can check who sent it.

    HMAC-SHA256 with the secret, as `sha256=<hex digest>`, by `style`:

    - `generic` (default): over `<timestamp>.<raw body>`, in `<signature_header>`
      (default `X-Wireway-Signature`), with the Unix time of sending in
      `<timestamp_header>` (default `X-Wireway-Timestamp`): the time cannot be
      changed unnoticed, so the receiver can refuse a request replayed later. The
      `webhook` input with `style: generic` checks it (and deduplicates by the
      `X-Wireway-Message-Id` of each request of `batch: false`).
    - `body`: over the raw body alone, in the same headers (for receivers that check
      only the body; the timestamp header is then not covered).
    - `github`: GitHub's form, `X-Hub-Signature-256` over the body; each request of
      `batch: false` also carries its message id as `X-GitHub-Delivery`, so the
      `webhook` input (default style) checks it and deduplicates. Add the event name
      with a header template, e.g. `headers: {X-GitHub-Event: "{messageType}"}`.

    The secret is `secret` or, if empty, the first line of `secret_file`. With
    neither (say `${SECRET:-}` unset and no file) requests are sent unsigned.
    """

    secret: Annotated[str, Meta(description="the shared key; `${VAR}` reads it from the environment")] = ""
    secret_file: Annotated[
        str, Meta(description="a file whose first line is the key (relative to the pattern file)")
    ] = ""
    style: Annotated[Literal["generic", "body", "github"], Meta(description="what is signed (see above)")] = (
        "generic"
    )
    signature_header: Annotated[
        str | None,
        Meta(description="default `X-Wireway-Signature` (`X-Hub-Signature-256` for github)"),
    ] = None
    timestamp_header: Annotated[str, Meta(description="the Unix time of sending (body, generic)")] = (
        WIREWAY_TIMESTAMP
    )

    def __post_init__(self) -> None:
        if self.signature_header == "":
            raise ValueError("expected a header name - at `$.signature_header`")


class HttpClientOutputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Send messages to a URL (POST, PUT or PATCH).

    `batch: false` sends one request per message (JSON body); `batch: true` sends
    the whole batch as one JSON array (or JSON lines with `format: jsonl`);
    `batch: json_array` always sends one JSON array per batch.
    A 2xx answer confirms. 5xx, 408, 429, timeouts and connection errors are
    retried with backoff and feed the circuit breaker; any other 4xx sends the
    message straight to the dead-letter queue. A 429 or 503 with `Retry-After`
    (seconds or an HTTP date) holds the next attempt back at least that long (at
    most `retry_after_max`), counted as one of the pattern's `retries`.

    Each request of `batch: false` carries its message's id in `X-Wireway-Message-Id`:
    a request sent again (a retry after an error or a lost answer) carries the same
    id, so the receiver can recognise it (delivery is at-least-once). `hmac` signs
    every request.

    `headers` values may hold placeholders filled from each message on the wire:
    `{messageId}`, `{messageType}`, `{source}`, `{timestamp}`, `{payload.device_id}`,
    `{metadata.correlationId}` (a dot goes one level into an object). A message
    lacking a field goes to the dead-letter queue with the reason; with `batch`, the
    batch's first message fills them.
    """

    address: Annotated[str, Meta(description="http:// or https:// URL")]
    batch: Annotated[
        bool | Literal["json_array"],
        Meta(description="false: a request per message; true or json_array: a request per batch"),
    ] = False
    payload_only: Annotated[bool, Meta(description="send the payload alone, not the whole envelope")] = False
    timeout: Annotated[float, Meta(gt=0, description="seconds per request")] = 10.0
    headers: Annotated[
        dict[str, str], Meta(description="extra request headers; values may hold `{field}` placeholders")
    ] = {}
    method: Annotated[Literal["POST", "PUT", "PATCH"], Meta(description="the request method")] = "POST"
    concurrency: Annotated[int, Meta(ge=1, le=64, description="requests in flight at once")] = 8
    hmac: Annotated[HmacOptions | None, Meta(description="sign each request (HMAC-SHA256)")] = None
    retry_after_max: Annotated[
        float, Meta(gt=0, description="seconds waited at most for one answer's Retry-After")
    ] = 300.0

    def __post_init__(self) -> None:
        if not self.address.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL - at `$.address`")
        for name, value in self.headers.items():
            for field in PLACEHOLDER.findall(value):
                if not FIELD.fullmatch(field) or field.split(".")[0] not in ENVELOPE:
                    message = f"`{{{field}}}` is not a message field (messageId, payload.x, ...)"
                    raise ValueError(f"{message} - at `$.headers.{name}`")

    def templated(self) -> dict[str, str]:
        """The headers whose values hold placeholders."""
        return {k: v for k, v in self.headers.items() if PLACEHOLDER.search(v)}
