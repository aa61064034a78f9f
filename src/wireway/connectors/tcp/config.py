"""Options of the `tcp` input and output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from msgspec import Meta

from wireway.connectors import tls as tlsmod
from wireway.connectors.framing import StreamClientOptions, StreamServerOptions
from wireway.connectors.hostport import parse_hostport
from wireway.connectors.tls import TlsOptions


def _check_address(address: str) -> None:
    try:
        parse_hostport(address)
    except ValueError:
        raise ValueError("expected host:port - at `$.address`") from None


class TcpInputConfig(StreamServerOptions, kw_only=True):
    """A TCP server: each client's byte stream is cut into records, by newlines
    (`framing: lines`, the default) or by a 4-byte big-endian length before each
    record (`framing: length`), and each record decoded with the entry's `format:`
    (default `json`; a line that is not valid goes to the dead-letter queue).

    With `ack: true` the server answers each batch of records it has read with one
    line: `ok N` once those N messages are in their outboxes, `ok N of M` when the M
    records read made another number of messages (the rest went to the dead-letter
    queue or were filtered out), or `error ...`; so a sender can know what is safe.
    Without it the protocol has no acknowledgement at all.

    `tls:` makes it a TLS server (`cert` and `key`); with `tls.ca` it also requires
    each client to present a certificate signed by that CA (mutual TLS).
    """

    address: Annotated[str, Meta(description="host:port to listen on")]
    tls: Annotated[TlsOptions | None, Meta(description="serve TLS (see below)")] = None

    def __post_init__(self) -> None:
        _check_address(self.address)
        tlsmod.check(self.tls, server=True)

    def resources(self, base_dir: Path) -> list[str]:
        return [f"tcp port {parse_hostport(self.address)[1]}"]


class TcpOutputConfig(StreamClientOptions, kw_only=True):
    """A TCP client: each message encoded with the entry's `format:` (default
    `json`), one per line (`framing: lines`) or after its 4-byte big-endian length
    (`framing: length`), over one connection that is reopened with a doubling,
    jittered delay whenever it drops.

    TCP itself has no application-level acknowledgement: a batch is confirmed once
    it is written and drained to the connected socket, and bytes still in the
    kernel's buffers when the peer goes away are lost (at-most-once for them). With
    `await_ack: true` and a peer that answers `ok N` (wireway's own `tcp` input with
    `ack: true`) a batch is confirmed only once the peer has stored all of it, and
    sent again after a reconnect otherwise (at-least-once).

    `tls:` connects with TLS, verifying the server against `tls.ca` (or the system
    CAs) and `tls.server_name` (or the host); `tls.cert`/`tls.key` are the client
    certificate for mutual TLS.
    """

    address: Annotated[str, Meta(description="host:port to connect to")]
    tls: Annotated[TlsOptions | None, Meta(description="connect with TLS (see below)")] = None

    def __post_init__(self) -> None:
        _check_address(self.address)
        super().__post_init__()
        tlsmod.check(self.tls, server=False)
