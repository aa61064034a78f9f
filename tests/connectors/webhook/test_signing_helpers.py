"""connectors/signing.py, the helpers the webhook input and the http_client output share."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from wireway.connectors.signing import fresh, secrets_of, sign, signed_text, verify
from wireway.errors import WirewayError


def test_sign_and_verify_agree_in_both_forms() -> None:
    """`sign` makes what `verify` accepts, with or without a timestamp; the hex may come
    bare or in capitals; another body, time or secret fails."""
    body = b'{"a": 1}'
    plain = sign(b"k", body)
    assert plain == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert verify([b"k"], body, plain)
    assert verify([b"k"], body, plain.removeprefix("sha256=").upper())
    stamped = sign(b"k", body, "1700000000")
    assert signed_text(body, "1700000000") == b"1700000000." + body
    assert verify([b"old", b"k"], body, stamped, "1700000000")
    assert not verify([b"k"], body, stamped, "1700000001")
    assert not verify([b"k"], body + b" ", plain)
    assert not verify([b"other"], body, plain)
    assert not verify([b"k"], body, "sha256=")
    assert not verify([], body, plain)


def test_fresh_within_the_window_either_side() -> None:
    assert fresh("1000", 300, 1300)
    assert fresh("1300.5", 300, 1000.5)
    assert not fresh("999", 300, 1300)
    assert not fresh("1301", 300, 1000)
    assert not fresh("soon", 300, 1000)


def test_secrets_inline_and_from_a_file(tmp_path: Path) -> None:
    """Empty ones are left out; a file's lines are stripped; a missing file is a WirewayError."""
    (tmp_path / "keys").write_text(" a \n\nb\n")
    assert secrets_of(["x", ""], "keys", tmp_path) == [b"x", b"a", b"b"]
    assert secrets_of(["x"], str(tmp_path / "keys"), Path("/")) == [b"x", b"a", b"b"]
    with pytest.raises(WirewayError, match="cannot read secret_file"):
        secrets_of([], "missing", tmp_path)
