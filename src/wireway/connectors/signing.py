"""HMAC-SHA256 request signatures, the same way for the `webhook` input that checks
them and the `http_client` output that makes them.

Three forms of signed text, by `style`:

- `github`: the raw body, sent as `X-Hub-Signature-256: sha256=<hex>`;
- `generic`: `<timestamp>.<raw body>`, the Unix time in its own header, so a receiver
  can refuse a request replayed later (the timestamp cannot be changed unnoticed);
- `body`: the raw body, with the time in its own header but not signed (the
  `http_client` output's first form, kept for receivers that check it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from pathlib import Path

from wireway.errors import WirewayError

GITHUB_SIGNATURE = "X-Hub-Signature-256"
GITHUB_DELIVERY = "X-GitHub-Delivery"
WIREWAY_SIGNATURE = "X-Wireway-Signature"
WIREWAY_TIMESTAMP = "X-Wireway-Timestamp"
MESSAGE_ID = "X-Wireway-Message-Id"
PREFIX = "sha256="


def signed_text(body: bytes, timestamp: str | None) -> bytes:
    """What the signature covers: `<timestamp>.<body>`, or the body alone without a timestamp."""
    return body if timestamp is None else timestamp.encode() + b"." + body


def sign(secret: bytes, body: bytes, timestamp: str | None = None) -> str:
    """The signature header's value: `sha256=` and the HMAC-SHA256 in hex."""
    return PREFIX + hmac.new(secret, signed_text(body, timestamp), hashlib.sha256).hexdigest()


def verify(secrets: Sequence[bytes], body: bytes, given: str, timestamp: str | None = None) -> bool:
    """True when `given` (`sha256=<hex>` or the bare hex) is the signature of one of the
    secrets (several while a secret is being replaced). Compared in constant time."""
    given = given.strip()
    if given[:7].lower() == PREFIX:
        given = given[7:]
    if not given:
        return False
    text = signed_text(body, timestamp)
    raw = given.lower().encode()
    found = False
    for secret in secrets:  # every secret is tried: the time taken does not tell which one
        expected = hmac.new(secret, text, hashlib.sha256).hexdigest().encode()
        found |= hmac.compare_digest(raw, expected)
    return found


def fresh(timestamp: str, window: float, now: float) -> bool:
    """True when `timestamp` (Unix seconds) is within `window` seconds of `now`, either side."""
    try:
        sent = float(timestamp.strip())
    except ValueError:
        return False
    return abs(now - sent) <= window


def secrets_of(values: Iterable[str], file: str, base_dir: Path) -> list[bytes]:
    """The secrets given inline and in `file` (one per line, relative to the pattern
    file), empty ones left out. Raises WirewayError when the file cannot be read."""
    found = [v for v in values if v]
    if file:
        path = Path(file) if Path(file).is_absolute() else base_dir / file
        try:
            text = path.read_text()
        except OSError as exc:
            raise WirewayError(f"cannot read secret_file {path}: {exc.strerror or exc}") from exc
        found += [line.strip() for line in text.splitlines() if line.strip()]
    return [v.encode() for v in found]
