"""Options of the `http_client` output."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class HmacOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Sign each request so the receiver can check who sent it.

    The signature is HMAC-SHA256 with `secret` over the raw request body, sent as
    `<signature_header>: sha256=<hex digest>` (default `X-Wireway-Signature`), with the
    Unix time of sending in `<timestamp_header>` (default `X-Wireway-Timestamp`) so a
    receiver can refuse old requests. An empty `secret` (say `${SECRET:-}` unset)
    sends requests unsigned.
    """

    secret: Annotated[str, Meta(description="the shared key; `${VAR}` reads it from the environment")]
    signature_header: str = "X-Wireway-Signature"
    timestamp_header: str = "X-Wireway-Timestamp"


class HttpClientOutputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """POST messages to a URL.

    `batch: false` sends one request per message (JSON body); `batch: true` sends
    the whole batch as one JSON array (or JSON lines with `format: jsonl`).
    A 2xx answer confirms. 5xx, 408, 429, timeouts and connection errors are
    retried with backoff and feed the circuit breaker; any other 4xx sends the
    message straight to the dead-letter queue.

    Each request of `batch: false` carries its message's id in `X-Wireway-Message-Id`:
    a request sent again (a retry after an error or a lost answer) carries the same
    id, so the receiver can recognise it (delivery is at-least-once). `hmac` signs
    every request's body.
    """

    address: Annotated[str, Meta(description="http:// or https:// URL")]
    batch: bool = False
    payload_only: bool = False
    timeout: Annotated[float, Meta(gt=0, description="seconds per request")] = 10.0
    headers: dict[str, str] = {}
    method: Literal["POST", "PUT"] = "POST"
    concurrency: Annotated[int, Meta(ge=1, le=64)] = 8
    hmac: Annotated[HmacOptions | None, Meta(description="sign each request (HMAC-SHA256)")] = None

    def __post_init__(self) -> None:
        if not self.address.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL - at `$.address`")
