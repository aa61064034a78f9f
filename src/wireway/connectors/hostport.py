"""Parsing `host:port` addresses the same way for every connector."""

from __future__ import annotations


def parse_hostport(address: str) -> tuple[str, int]:
    """'127.0.0.1:9000' -> ('127.0.0.1', 9000); '[::1]:9000' works too (raises ValueError)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected host:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)
