"""Addresses the same way for every connector: parsing `host:port`, binding a listener."""

from __future__ import annotations

import socket

from wireway.errors import WirewayError


def parse_hostport(address: str) -> tuple[str, int]:
    """'127.0.0.1:9000' -> ('127.0.0.1', 9000); '[::1]:9000' works too (raises ValueError)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected host:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def bind(host: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket, or a WirewayError that says which address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise WirewayError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock
