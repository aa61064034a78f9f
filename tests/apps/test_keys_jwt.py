"""API keys (32 random bytes, stored as digests only, revocable, with an expiry; the
CLI's --expires) and JWTs (one algorithm, never `none`, no HS/RS confusion, exp, nbf,
aud, iss, leeway)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import wireway
from wireway.apps.sensor_ingest.auth import KEY_BYTES, AuthError, Keys, new_key
from wireway.apps.sensor_ingest.migrations import migrate
from wireway.cli.sensors import expiry
from wireway.config.model import Security
from wireway.connectors.sql.db import Database, open_database

SECRET = "keys-jwt-test-secret-0123456789abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = open_database(f"sqlite:///{tmp_path}/keys.db", data_dir=tmp_path)
    await database.open()
    await migrate(database)
    try:
        yield database
    finally:
        await database.close()


def keys_of(db: Database, **security: Any) -> Keys:
    return Keys(db, Security(authentication="api_key", **security))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def handmade(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A token built by hand (PyJWT refuses to sign some of the forgeries)."""
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(key, head.encode(), hashlib.sha256).digest() if key is not None else b""
    return head + "." + b64(sig)


def test_a_key_carries_32_random_bytes() -> None:
    made = {new_key()[1] for _ in range(50)}
    assert len(made) == 50
    for key in made:
        secret = key.split("_", 2)[2]
        assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) == KEY_BYTES


async def test_keys_are_stored_as_digests_revocable_and_expire(db: Database, tmp_path: Path) -> None:
    keys = keys_of(db)
    key_id, key = await keys.create("esp32-k")
    soon_id, soon = await keys.create("esp32-k", expires_at=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(ValueError, match="time zone"):
        await keys.create("esp32-k", expires_at=datetime(2030, 1, 1))
    await keys.refresh()
    # the database holds the digest, never the key (nor its secret part)
    rows = await db.fetch(f"SELECT * FROM {keys.table}")
    text = repr(rows) + (tmp_path / "keys.db").read_bytes().decode("latin-1")
    for k in (key, soon):
        assert k not in text
        assert k.split("_", 2)[2] not in text
        assert hashlib.sha256(k.encode()).hexdigest() in text
    found = keys.check_key(key)
    assert found is not None
    assert found.device_id == "esp32-k"
    assert keys.check_key(soon) is not None
    assert keys.check_key(key + "x") is None
    # expiry: refused once the clock passes it (the key table is not reread)
    keys.clock = lambda: time.time() + 3601
    assert keys.check_key(soon) is None
    assert keys.check_key(key) is not None  # no expiry
    with pytest.raises(AuthError) as refused:
        keys.authenticate(soon, None)
    assert refused.value.status == 401
    keys.clock = time.time
    # revocation: gone at the next refresh
    assert await keys.revoke(key_id)
    assert not await keys.revoke(key_id)  # once
    await keys.refresh()
    assert keys.check_key(key) is None
    listed = {r["key_id"]: r for r in await keys.list()}
    assert listed[key_id]["revoked_at"] is not None
    assert listed[soon_id]["expires_at"] is not None


def test_expiry_option() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert expiry("30d", now) == now + timedelta(days=30)
    assert expiry("90m", now) == now + timedelta(minutes=90)
    assert expiry("2030-01-01T00:00:00+01:00", now) == datetime(2029, 12, 31, 23, tzinfo=UTC)
    for bad in ("soon", "2030-01-01T00:00:00", "2020-01-01T00:00:00Z", "-5d"):
        with pytest.raises(typer.BadParameter, match=r"span|zone|past"):
            expiry(bad, now)


def test_cli_creates_a_key_with_an_expiry(tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path / "data")]
    created = wireway("keys", "create", "--device", "esp32-e", "--expires", "2h", *d)
    assert created.returncode == 0, created.stderr
    assert "expires: " in created.stdout
    listed = wireway("keys", "list", *d, env={"COLUMNS": "250"})
    assert "expires" in listed.stdout
    assert str(datetime.now(UTC).year) in listed.stdout
    bad = wireway("keys", "create", "--device", "esp32-e", "--expires", "yesterday", *d)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


def hs(claims: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


async def test_jwt_claims_are_checked(db: Database) -> None:
    keys = keys_of(
        db, jwt_secret=SECRET, jwt_audience="wireway", jwt_issuer="https://id.example", jwt_leeway=5
    )
    now = int(time.time())
    good = {"sub": "esp32-j", "aud": "wireway", "iss": "https://id.example", "exp": now + 60}
    assert keys.check_jwt(hs(good)).device_id == "esp32-j"
    assert keys.check_jwt(hs({**good, "exp": now - 2})).device_id == "esp32-j"  # within the leeway
    refused = {
        "expired": {**good, "exp": now - 60},
        "not yet valid": {**good, "nbf": now + 60},
        "another audience": {**good, "aud": "someone-else"},
        "no audience": {k: v for k, v in good.items() if k != "aud"},
        "another issuer": {**good, "iss": "https://evil.example"},
        "no issuer": {k: v for k, v in good.items() if k != "iss"},
    }
    for why, claims in refused.items():
        with pytest.raises(AuthError) as exc:
            keys.check_jwt(hs(claims))
        assert exc.value.status == 401, why
        assert SECRET not in exc.value.message
    with pytest.raises(AuthError):
        keys.check_jwt(hs(good, "another-secret-0123456789abcdef0123456"))


async def test_jwt_leeway_is_configurable(db: Database) -> None:
    late = hs({"sub": "esp32-l", "exp": int(time.time()) - 100})
    assert keys_of(db, jwt_secret=SECRET, jwt_leeway=300).check_jwt(late).device_id == "esp32-l"
    with pytest.raises(AuthError):
        keys_of(db, jwt_secret=SECRET, jwt_leeway=0).check_jwt(late)


async def test_jwt_algorithm_none_and_confusion_are_refused(db: Database, tmp_path: Path) -> None:
    claims = {"sub": "esp32-a", "role": "admin"}
    hs_keys = keys_of(db, jwt_secret=SECRET)
    for alg in ("none", "None", "NONE"):
        with pytest.raises(AuthError):
            hs_keys.check_jwt(handmade({"alg": alg, "typ": "JWT"}, claims, None))
    # HS512 with the right secret is still another algorithm than the one configured
    with pytest.raises(AuthError):
        hs_keys.check_jwt(jwt.encode(claims, SECRET, algorithm="HS512"))

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    rs_keys = keys_of(db, jwt_public_key=str(tmp_path / "pub.pem"))
    signed = jwt.encode({"sub": "esp32-a"}, private, algorithm="RS256")
    assert rs_keys.check_jwt(signed).device_id == "esp32-a"
    # the classic confusion: HS256 "signed" with the public key as the HMAC secret
    forged = handmade({"alg": "HS256", "typ": "JWT"}, claims, pem)
    with pytest.raises(AuthError):
        rs_keys.check_jwt(forged)
    with pytest.raises(AuthError):
        rs_keys.check_jwt(handmade({"alg": "none"}, claims, None))
    # a device's token is a device; `role: admin` only from a valid signature
    assert hs_keys.check_jwt(hs({"sub": "esp32-a"})).role == "device"
    assert hs_keys.check_jwt(hs(claims)).admin


def test_webhook_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every secret is compared with hmac.compare_digest, also after one matched (the time
    taken tells neither how much of a signature was right nor which secret signed it); the
    timestamp is inside what is signed, so a replay cannot move it into the window."""
    from wireway.connectors import signing

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    body, ts = b'{"n": 1}', "1767225600"
    secrets_ = [b"first-secret", b"second-secret", b"third-secret"]
    good = signing.sign(secrets_[0], body, ts)
    assert signing.verify(secrets_, body, good, ts)
    assert len(compared) == 3
    compared.clear()
    assert not signing.verify(secrets_, body, "sha256=" + "0" * 64, ts)
    assert len(compared) == 3
    assert not signing.verify(secrets_, body, good, str(int(ts) + 1))  # another time: another text
    assert not signing.fresh(ts, 300, float(ts) + 301)
    assert signing.fresh(ts, 300, float(ts) - 300)
