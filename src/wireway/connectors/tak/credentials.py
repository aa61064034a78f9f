"""SSL contexts of the tak connector: tls.py's, plus a certificate and key from a
PKCS#12 file or an encrypted PEM key.

Python's `ssl` loads a certificate chain only from files, so a PKCS#12 file is
converted to two temporary PEM files that are deleted once loaded; the key in them
is encrypted with a random password, so the plain key never touches the disk.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    pkcs12,
)

from wireway.connectors import tls as tlsmod
from wireway.connectors.tak.config import TakTlsOptions
from wireway.errors import WirewayError


def _path(base_dir: Path, name: str) -> Path:
    return Path(name) if Path(name).is_absolute() else base_dir / name


def client_context(tls: TakTlsOptions, base_dir: Path) -> ssl.SSLContext:
    """The context of the output's connections (WirewayError for unreadable files)."""
    ctx = tlsmod.client_context(msgspec.structs.replace(tls, cert=None, key=None), base_dir)
    load_identity(ctx, tls, base_dir)
    return ctx


def server_context(tls: TakTlsOptions, base_dir: Path) -> ssl.SSLContext:
    """The context of the input's listener (WirewayError for unreadable files)."""
    ctx = tlsmod.server_context(msgspec.structs.replace(tls, cert=None, key=None), base_dir)
    load_identity(ctx, tls, base_dir)
    return ctx


def load_identity(ctx: ssl.SSLContext, tls: TakTlsOptions, base_dir: Path) -> None:
    """Load the own certificate and key, from PEM files or a PKCS#12 file."""
    password = (tls.password or "").encode()
    if tls.pkcs12 is not None:
        load_pkcs12(ctx, _path(base_dir, tls.pkcs12), password)
        return
    if tls.cert is None or tls.key is None:
        return
    try:
        # a password is always given, so an encrypted key without one fails here
        # instead of OpenSSL asking for it on the terminal
        ctx.load_cert_chain(str(_path(base_dir, tls.cert)), str(_path(base_dir, tls.key)), password)
    except (OSError, ssl.SSLError) as exc:
        raise WirewayError(f"cannot load the certificate {tls.cert} and key {tls.key}: {exc}") from exc


def load_pkcs12(ctx: ssl.SSLContext, path: Path, password: bytes) -> None:
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(path.read_bytes(), password or None)
    except OSError as exc:
        raise WirewayError(f"cannot read the PKCS#12 file {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise WirewayError(f"cannot open the PKCS#12 file {path} (wrong password?): {exc}") from exc
    if key is None or cert is None:
        raise WirewayError(f"the PKCS#12 file {path} holds no certificate with its key")
    chain = b"".join(c.public_bytes(Encoding.PEM) for c in [cert, *extra])
    secret = secrets.token_bytes(32)
    sealed = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(secret))
    with tempfile.TemporaryDirectory(prefix="wireway-tak-") as folder:
        certfile, keyfile = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        for name, data in ((certfile, chain), (keyfile, sealed)):
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ctx.load_cert_chain(certfile, keyfile, secret)
        except ssl.SSLError as exc:
            raise WirewayError(f"cannot use the certificate of {path}: {exc}") from exc
