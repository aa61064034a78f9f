"""TLS for socket connectors: the `tls:` options and the SSL contexts built from them."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from wireway.errors import WirewayError

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """TLS of a socket connector. Paths are relative to the pattern file.

    A server (an input) needs `cert` and `key`; with `ca` it also asks every client
    for a certificate signed by that CA and refuses a client without one (mutual
    TLS; `verify: false` makes the client certificate optional). A client (an
    output) verifies the server against `ca` (default: the system CAs) and its name
    against `server_name` (default: the host it connects to); `cert` and `key` are
    its own certificate for mutual TLS; `verify: false` skips both checks.
    """

    ca: Annotated[str | None, Meta(description="CA bundle (PEM) that verifies the peer")] = None
    cert: Annotated[str | None, Meta(description="own certificate chain (PEM)")] = None
    key: Annotated[str | None, Meta(description="private key (PEM) of `cert`")] = None
    verify: Annotated[
        bool,
        Meta(
            description="client: verify the server's certificate and name; server with `ca`: "
            "require a client certificate"
        ),
    ] = True
    server_name: Annotated[
        str | None, Meta(description="client: the name the server's certificate must carry")
    ] = None
    min_version: Annotated[Literal["1.2", "1.3"], Meta(description="oldest TLS version accepted")] = "1.2"


def check(tls: TlsOptions | None, server: bool) -> None:
    """Raise ValueError (at its key) for a combination a server or a client cannot use."""
    if tls is None:
        return
    if (tls.cert is None) != (tls.key is None):
        raise ValueError("`cert` and `key` go together - at `$.tls.cert`")
    if server and tls.cert is None:
        raise ValueError("a server needs its certificate (`cert` and `key`) - at `$.tls`")
    if server and tls.server_name is not None:
        raise ValueError("only a client checks a server name - at `$.tls.server_name`")


def _path(base_dir: Path, name: str) -> str:
    return str(name if Path(name).is_absolute() else base_dir / name)


def server_context(tls: TlsOptions, base_dir: Path) -> ssl.SSLContext:
    """The context of a listening socket (raises WirewayError for unreadable files)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    try:
        if tls.cert is not None and tls.key is not None:
            ctx.load_cert_chain(_path(base_dir, tls.cert), _path(base_dir, tls.key))
        if tls.ca is not None:
            ctx.load_verify_locations(_path(base_dir, tls.ca))
            ctx.verify_mode = ssl.CERT_REQUIRED if tls.verify else ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise WirewayError(f"cannot load the TLS files: {exc}") from exc
    return ctx


def client_context(tls: TlsOptions, base_dir: Path) -> ssl.SSLContext:
    """The context of a connecting socket (raises WirewayError for unreadable files)."""
    try:
        cafile = _path(base_dir, tls.ca) if tls.ca is not None else None
        ctx = ssl.create_default_context(cafile=cafile)
        if tls.cert is not None and tls.key is not None:
            ctx.load_cert_chain(_path(base_dir, tls.cert), _path(base_dir, tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise WirewayError(f"cannot load the TLS files: {exc}") from exc
    ctx.minimum_version = _VERSIONS[tls.min_version]
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
