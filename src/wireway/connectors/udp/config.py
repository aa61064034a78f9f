"""Options of the `udp` input and output."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from wireway.connectors.hostport import parse_hostport
from wireway.connectors.udp_sockets import check_interface

MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4


def check_address(address: str) -> tuple[str, int, bool]:
    """(host, port, whether host is a multicast group); ValueError at `$.address`."""
    try:
        host, port = parse_hostport(address)
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("expected IP:port (a numeric address) - at `$.address`") from None
    if ip.is_multicast and ip.version == 6:
        raise ValueError("multicast over IPv6 is not supported - at `$.address`")
    return host, port, ip.is_multicast


class UdpInputConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Receive datagrams; each one is a message, decoded with the entry's `format:`
    (default `json`). A datagram that does not decode, or is longer than
    `max_datagram_bytes`, goes to the dead-letter queue (counted there).

    `address` is where to listen: `127.0.0.1:5000` (unicast), `0.0.0.0:5000` (any
    address of this machine, broadcasts included) or a multicast group such as
    `239.1.2.3:5000`, which is joined on `interface` (a name such as `lo` or `eth0`,
    or its IPv4 address; default: the system's choice). With `reuse_port: true`
    several listeners (wireway instances or other programs) share the port, and
    each member of a group gets every datagram.

    The datagrams that arrive while a batch is being stored are ingested together
    as the next batch; beyond `max_pending` of them the newest are dropped (and
    logged), as the kernel drops them when its receive buffer is full.
    """

    address: Annotated[str, Meta(description="IP:port to listen on; a multicast group joins it")]
    interface: Annotated[
        str | None, Meta(description="for a group: the interface (name or IPv4 address) to join it on")
    ] = None
    reuse_port: Annotated[bool, Meta(description="share the port with other listeners (SO_REUSEPORT)")] = (
        False
    )
    max_datagram_bytes: Annotated[
        int, Meta(ge=1, le=MAX_DATAGRAM, description="a longer datagram goes to the dead-letter queue")
    ] = MAX_DATAGRAM
    receive_buffer: Annotated[
        Annotated[int, Meta(ge=1024)] | None,
        Meta(description="kernel receive buffer in bytes (SO_RCVBUF), for bursts"),
    ] = None
    max_pending: Annotated[
        int, Meta(ge=1, description="datagrams held while a batch is being stored; more are dropped")
    ] = 10_000

    def __post_init__(self) -> None:
        _, _, group = check_address(self.address)
        check_interface(self.interface, group)

    def resources(self, base_dir: Path) -> list[str]:
        if self.reuse_port:
            return []
        host, port = parse_hostport(self.address)
        return [f"udp {host}:{port}"]


class UdpOutputConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Send each message as one datagram, encoded with the entry's `format:` (default
    `json`). A message whose record is longer than `max_datagram_bytes` goes to the
    dead-letter queue. A batch is confirmed once its datagrams are handed to the
    kernel: UDP has no acknowledgement, so a datagram lost on the way is not known.

    `address` is where to: one host (`127.0.0.1:5001`), a broadcast address
    (`127.255.255.255:5001`, with `broadcast: true`) or a multicast group
    (`239.1.2.3:5001`), sent through `interface`, with `ttl` hops (0: this host
    only, 1: this link) and `loopback` deciding whether listeners on this host get
    them too.
    """

    address: Annotated[str, Meta(description="IP:port to send to (host, broadcast or multicast group)")]
    payload_only: Annotated[bool, Meta(description="send the payload alone, not the envelope")] = False
    broadcast: Annotated[bool, Meta(description="allow sending to a broadcast address (SO_BROADCAST)")] = (
        False
    )
    interface: Annotated[
        str | None, Meta(description="for a group: the interface (name or IPv4 address) to send through")
    ] = None
    ttl: Annotated[int, Meta(ge=0, le=255, description="for a group: hops a datagram may take")] = 1
    loopback: Annotated[bool, Meta(description="for a group: deliver to listeners on this host too")] = True
    max_datagram_bytes: Annotated[
        int, Meta(ge=1, le=MAX_DATAGRAM, description="a longer record goes to the dead-letter queue")
    ] = MAX_DATAGRAM

    def __post_init__(self) -> None:
        _, _, group = check_address(self.address)
        check_interface(self.interface, group)
