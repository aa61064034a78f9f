"""Options of the `http_client` output."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class HttpClientOutputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """POST messages to a URL.

    `batch: false` sends one request per message (JSON body); `batch: true` sends
    the whole batch as one JSON array (or JSON lines with `format: jsonl`).
    A 2xx answer confirms. 5xx, 408, 429, timeouts and connection errors are
    retried with backoff and feed the circuit breaker; any other 4xx sends the
    message straight to the dead-letter queue.
    """

    address: Annotated[str, Meta(description="http:// or https:// URL")]
    batch: bool = False
    payload_only: bool = False
    timeout: Annotated[float, Meta(gt=0, description="seconds per request")] = 10.0
    headers: dict[str, str] = {}
    method: Literal["POST", "PUT"] = "POST"
    concurrency: Annotated[int, Meta(ge=1, le=64)] = 8

    def __post_init__(self) -> None:
        if not self.address.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL - at `$.address`")
