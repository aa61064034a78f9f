"""Options of the `webhook` input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from wireway.connectors.signing import (
    GITHUB_DELIVERY,
    GITHUB_SIGNATURE,
    MESSAGE_ID,
    WIREWAY_SIGNATURE,
    WIREWAY_TIMESTAMP,
)

RESERVED = ("/health", "/ready", "/status", "/metrics", "/openapi.json", "/ws")


class WebhookInputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Signed webhooks POSTed to a path on the process's shared HTTP server.

    Before anything is kept, the HMAC-SHA256 signature of the raw body is checked
    against each secret (several while one is being replaced), in constant time:

    - `style: github`: `X-Hub-Signature-256: sha256=<hex>` over the body. The
      delivery id in `X-GitHub-Delivery` names the message (the same id for every
      redelivery), and an id already accepted is answered 200 again without being
      kept twice: the ids are remembered in the data folder (the last `remember`
      of them), across restarts: a replayed request is kept at most once while its id
      is remembered. `X-GitHub-Event` (`push`, `issues`, ...) becomes the
      messageType, so `when: messageType == "push"` routes by event. Choose the
      content type `application/json` in GitHub's settings.
    - `style: generic`: the signature header (default `X-Wireway-Signature`,
      `sha256=<hex>` or the bare hex) over `<timestamp>.<body>`, the timestamp
      (Unix seconds) in its own header (default `X-Wireway-Timestamp`); a request
      whose timestamp is more than `replay_window` seconds away is refused. The
      `http_client` output signs this way with `hmac: {style: generic}`, and its
      `X-Wireway-Message-Id` deduplicates as the GitHub delivery id does.

    `secret` takes one secret or a list; `secret_file` adds one per line (read at
    start). To replace a secret, accept both until every sender signs with the new one.

    The body is decoded with `format:` (default `json`: one message per request; an
    envelope is taken as it is). Answers 202 `{"accepted": n, "ids": [...]}` once
    the messages are in their outboxes, 200 with `"duplicate": true` for a delivery
    id already accepted, 401 for a missing or wrong signature or a stale timestamp
    (nothing kept; counted as `wireway_messages_total{outcome="unauthorized"}` and
    logged), 400 when the body does not decode or the pattern refuses it, 413 over
    `security.max_body_bytes`, 503 with Retry-After while a buffer is full. The
    signature is this input's authentication: `security.authentication` does not
    apply to it.
    """

    address: Annotated[str, Meta(description="URL path, e.g. /hooks/github")]
    style: Annotated[
        Literal["github", "generic"], Meta(description="how requests are signed (see above)")
    ] = "github"
    secret: Annotated[
        str | list[str],
        Meta(description="the shared key, or several (rotation); `${VAR}` reads the environment"),
    ] = ""
    secret_file: Annotated[
        str, Meta(description="a file with one secret per line (relative to the pattern file)")
    ] = ""
    signature_header: Annotated[
        str | None,
        Meta(description="default `X-Hub-Signature-256` (github), `X-Wireway-Signature` (generic)"),
    ] = None
    timestamp_header: Annotated[str, Meta(description="the Unix time of sending (generic)")] = (
        WIREWAY_TIMESTAMP
    )
    id_header: Annotated[
        str | None,
        Meta(
            description="the delivery id that names the message and deduplicates; default "
            "`X-GitHub-Delivery` (github), `X-Wireway-Message-Id` (generic); empty: none"
        ),
    ] = None
    replay_window: Annotated[
        float, Meta(gt=0, description="seconds a generic request's timestamp may be away from now")
    ] = 300.0
    remember: Annotated[int, Meta(ge=1, description="delivery ids remembered for deduplication")] = 100_000

    def __post_init__(self) -> None:
        if not self.address.startswith("/"):
            raise ValueError("expected a URL path starting with / - at `$.address`")
        if self.address.rstrip("/") in RESERVED:
            raise ValueError(f"{self.address} is reserved by wireway - at `$.address`")
        if not self.secrets() and not self.secret_file:
            raise ValueError("a webhook needs a `secret` or a `secret_file` - at `$.secret`")
        if self.signature_header == "":
            raise ValueError("expected a header name - at `$.signature_header`")

    def secrets(self) -> list[str]:
        """The secrets given inline, empty ones (an unset `${VAR:-}`) left out."""
        given = [self.secret] if isinstance(self.secret, str) else self.secret
        return [s for s in given if s]

    def signature(self) -> str:
        if self.signature_header:
            return self.signature_header
        return GITHUB_SIGNATURE if self.style == "github" else WIREWAY_SIGNATURE

    def delivery(self) -> str | None:
        if self.id_header is not None:
            return self.id_header or None
        return GITHUB_DELIVERY if self.style == "github" else MESSAGE_ID

    def resources(self, base_dir: Path) -> list[str]:
        return [f"http route {self.address}"]
