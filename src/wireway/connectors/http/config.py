"""Options of the `http` input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta


class HttpInputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """POST endpoint on the process's shared HTTP server.

    Bodies: `application/json` (one value, or an array of values) or
    `application/x-ndjson` (JSON lines). Answers 202 `{"accepted": n, "ids": [...]}`
    once every message is in its outbox, 400 with reasons when any value is
    invalid (nothing is kept), 401 without valid credentials (see `security:`),
    413 over `security.max_body_bytes`, 415 for another content type, 503 with
    Retry-After while a buffer is full.

    A JSON body is refused (400, with the reason) when it is not plain JSON: invalid
    UTF-8, NaN or Infinity, a number beyond a float's range or an integer beyond 64
    bits, nesting deeper than 64 levels, or an object repeating a key. A request not
    received whole within `security.body_timeout` seconds gets 408 and its connection
    is closed. Each request refused whole counts in
    `wireway_messages_total{outcome="refused"}`.
    """

    address: Annotated[str, Meta(description="URL path, e.g. /ingest/orders")]
    max_items: Annotated[int, Meta(ge=1, description="values allowed in one request")] = 10000

    def __post_init__(self) -> None:
        if not self.address.startswith("/"):
            raise ValueError("expected a URL path starting with / - at `$.address`")
        reserved = ("/health", "/ready", "/status", "/metrics", "/openapi.json", "/ws")
        if self.address.rstrip("/") in reserved:
            raise ValueError(f"{self.address} is reserved by wireway - at `$.address`")

    def resources(self, base_dir: Path) -> list[str]:
        return [f"http route {self.address}"]
