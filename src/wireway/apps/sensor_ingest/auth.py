"""API keys (stored hashed), JWTs (HS256/RS256) and per-key rate limits.

A key is `ww_<key id>_<secret>`, the secret 32 random bytes (urlsafe base64); the
database keeps its SHA-256 digest only, with its role, device, creation, revocation
and optional expiry. A JWT is checked against one algorithm, the one its configured
key is for (HS256 for `jwt_secret`, RS256 for `jwt_public_key`), never `none`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wireway.apps.sensor_ingest.migrations import tables
from wireway.config.model import RateLimit, Security
from wireway.connectors.sql.db import Database

KEY_BYTES = 32  # of randomness in a key


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """(key_id, key): the key is shown once; only its hash is stored."""
    key_id = secrets.token_hex(4)
    return key_id, f"ww_{key_id}_{secrets.token_urlsafe(KEY_BYTES)}"


@dataclass
class Principal:
    """Who is calling: an admin, or a device limited to its own readings."""

    key_id: str
    role: str  # "admin" | "device"
    device_id: str | None = None
    expires_at: float | None = None  # epoch seconds; None: never

    @property
    def admin(self) -> bool:
        return self.role == "admin"


@dataclass
class Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """A token bucket per key: `burst` at once, refilled at per_minute / 60 per second."""

    limit: RateLimit
    buckets: dict[str, Bucket] = field(default_factory=dict)

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        rate = self.limit.per_minute / 60.0
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = Bucket(float(self.limit.burst), now)
        b.tokens = min(float(self.limit.burst), b.tokens + (now - b.stamp) * rate)
        b.stamp = now
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        return (1 - b.tokens) / rate


class AuthError(Exception):
    """Why a request is refused, with its HTTP status."""

    def __init__(self, status: int, message: str, retry_after: float = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _epoch(value: Any) -> float | None:
    """A stored timestamp (datetime or RFC 3339 text) as epoch seconds."""
    if value is None or value == "":
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


RETRY_UNREADY = 5.0  # Retry-After (s) while the storage was never reached


class Keys:
    """The key table, cached in memory and refreshed so revocations apply within seconds."""

    def __init__(self, db: Database, security: Security) -> None:
        self.db = db
        self.table = tables(db).api_keys
        self.security = security
        self.by_hash: dict[str, Principal] = {}
        self.loaded = 0.0
        self.static = {
            hash_key(k): Principal(f"static-{i}", "admin") for i, k in enumerate(security.api_keys) if k
        }
        self.limiter = RateLimiter(security.rate_limit or RateLimit())
        self.jwt_key, self.jwt_alg = self._jwt_settings()
        self.clock = time.time

    def _jwt_settings(self) -> tuple[str, str]:
        secret = self.security.jwt_secret or os.environ.get("WIREWAY_JWT_SECRET", "")
        pem = self.security.jwt_public_key or os.environ.get("WIREWAY_JWT_PUBLIC_KEY", "")
        if pem:
            text = Path(pem).read_text() if not pem.lstrip().startswith("-----") else pem
            return text, "RS256"
        return secret, "HS256"

    @property
    def enabled(self) -> bool:
        return self.security.authentication != "none"

    async def refresh(self) -> None:
        rows = await self.db.fetch(
            f"SELECT key_id, key_hash, role, device_id, expires_at FROM {self.table} WHERE revoked_at IS NULL"
        )
        self.by_hash = {
            r["key_hash"]: Principal(r["key_id"], r["role"], r["device_id"], _epoch(r["expires_at"]))
            for r in rows
        }
        self.loaded = time.monotonic()

    async def ensure_admin(self) -> str | None:
        """Create the admin key on first start; returns the new key to print once, or None."""
        wanted = os.environ.get("WIREWAY_ADMIN_KEY", "")
        row = await self.db.fetchrow(f"SELECT key_hash FROM {self.table} WHERE key_id = 'admin'")
        now = datetime.now(UTC)
        if wanted:
            if row is None:
                await self.db.execute(
                    f"INSERT INTO {self.table} (key_id, key_hash, role, created_at) "
                    "VALUES ('admin', $1, 'admin', $2)",
                    hash_key(wanted),
                    now,
                )
            elif row["key_hash"] != hash_key(wanted):
                await self.db.execute(
                    f"UPDATE {self.table} SET key_hash = $1, revoked_at = NULL WHERE key_id = 'admin'",
                    hash_key(wanted),
                )
            return None
        if row is not None:
            return None
        _, key = new_key()
        key = "ww_admin_" + key.split("_", 2)[2]
        await self.db.execute(
            f"INSERT INTO {self.table} (key_id, key_hash, role, created_at)"
            " VALUES ('admin', $1, 'admin', $2)",
            hash_key(key),
            now,
        )
        return key

    async def create(
        self, device_id: str | None, role: str = "device", expires_at: datetime | None = None
    ) -> tuple[str, str]:
        """A new key (id, key); the key itself is never stored, only its digest."""
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("expires_at needs a time zone")
        key_id, key = new_key()
        await self.db.execute(
            f"INSERT INTO {self.table} (key_id, key_hash, role, device_id, created_at, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            key_id,
            hash_key(key),
            role,
            device_id,
            datetime.now(UTC),
            expires_at.astimezone(UTC) if expires_at is not None else None,
        )
        return key_id, key

    async def revoke(self, key_id: str) -> bool:
        status = await self.db.execute(
            f"UPDATE {self.table} SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
            datetime.now(UTC),
            key_id,
        )
        return not status.endswith(" 0")

    async def list(self) -> list[dict[str, Any]]:
        return await self.db.fetch(
            f"SELECT key_id, role, device_id, created_at, revoked_at, expires_at FROM {self.table} "
            "ORDER BY created_at"
        )

    def check_key(self, key: str) -> Principal | None:
        # A dict lookup by the SHA-256 digest of what was sent, rather than
        # hmac.compare_digest against each stored key: the stored values are digests,
        # so how long a lookup takes depends on the digest of the attempt, which an
        # attacker cannot steer towards a stored digest (that needs a preimage); and it
        # stays one lookup however many keys there are. compare_digest is for comparing
        # a secret itself (the field kit's single key, webhook signatures).
        digest = hash_key(key)
        found = self.static.get(digest) or self.by_hash.get(digest)
        if found is not None and found.expires_at is not None and self.clock() >= found.expires_at:
            return None  # expired: refused like an unknown key
        return found

    def check_jwt(self, token: str) -> Principal:
        if not self.jwt_key:
            raise AuthError(401, "JWT authentication is not configured")
        import jwt  # here: PyJWT with cryptography is ~11 MB that a key-only setup never needs

        sec = self.security
        try:
            # one algorithm, the configured key's: never `none`, and an RS256 public
            # key is never used as an HS256 secret (no algorithm confusion)
            claims = jwt.decode(
                token,
                self.jwt_key,
                algorithms=[self.jwt_alg],
                audience=sec.jwt_audience or None,
                issuer=sec.jwt_issuer or None,
                leeway=sec.jwt_leeway,
                options={
                    "require": [c for c, on in (("aud", sec.jwt_audience), ("iss", sec.jwt_issuer)) if on],
                },
            )
        except jwt.PyJWTError as exc:
            # PyJWT's messages name the failed check (expired, audience...), never the key
            raise AuthError(401, f"invalid token: {exc}") from None
        sub = claims.get("sub")
        if claims.get("role") == "admin":
            return Principal(f"jwt:{sub}", "admin")
        if not isinstance(sub, str) or not sub:
            raise AuthError(401, "token has no sub (device id)")
        return Principal(f"jwt:{sub}", "device", sub)

    def authenticate(self, api_key: str | None, bearer: str | None) -> Principal:
        """The caller, or AuthError(401/429; 503 until the key table was read once)."""
        if not self.loaded:  # storage not reached yet: no key is known to be good or bad
            raise AuthError(503, "Storage unavailable, retry later", RETRY_UNREADY)
        if not self.enabled:
            return Principal("anonymous", "admin")
        principal: Principal | None = None
        if api_key:
            principal = self.check_key(api_key)
        elif bearer:
            principal = self.check_key(bearer) if bearer.startswith("ww_") else self.check_jwt(bearer)
        if principal is None:
            raise AuthError(401, "Missing or invalid credentials")
        if not principal.admin:
            wait = self.limiter.take(principal.key_id)
            if wait > 0:
                raise AuthError(429, "Rate limit exceeded", retry_after=wait)
        return principal
