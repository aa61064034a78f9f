"""Options of the `tak` input and output."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, NamedTuple
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from wireway.connectors import tls as tlsmod
from wireway.connectors.tls import TlsOptions
from wireway.connectors.udp_sockets import check_interface

MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4
ADDRESS_HELP = "expected udp://, tcp:// or tls:// and host:port, e.g. udp://239.2.3.1:6969"
UDP_OUTPUT = ("interface", "ttl", "loopback", "broadcast", "max_datagram_bytes")
STREAM_OUTPUT = ("connect_timeout", "reconnect_initial", "reconnect_max", "reconnect_jitter")
UDP_INPUT = ("interface", "reuse_port", "receive_buffer", "max_pending")


class Address(NamedTuple):
    """A parsed `address:` URL."""

    scheme: str  # udp, tcp or tls
    host: str
    port: int
    group: bool  # a multicast group address


def parse_address(url: str) -> Address:
    """`udp://239.2.3.1:6969` -> Address; ValueError at `$.address`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{ADDRESS_HELP} - at `$.address`") from None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("udp", "tcp", "tls") or not host or not port:
        raise ValueError(f"{ADDRESS_HELP} - at `$.address`")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("only scheme://host:port, nothing after it - at `$.address`")
    group = False
    if scheme == "udp":
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError("a udp:// address is numeric (IP:port) - at `$.address`") from None
        if ip.is_multicast and ip.version == 6:
            raise ValueError("multicast over IPv6 is not supported - at `$.address`")
        group = ip.is_multicast
    return Address(scheme, host, port, group)


def only_for(config: msgspec.Struct, names: tuple[str, ...], allowed: bool, what: str) -> None:
    """Options left at their default unless the address is of the kind they are for."""
    if allowed:
        return
    defaults = {f.name: f.default for f in msgspec.structs.fields(config)}
    for name in names:
        if getattr(config, name) != defaults[name]:
            raise ValueError(f"only for {what} - at `$.{name}`")


class TakTlsOptions(TlsOptions, kw_only=True):
    """TLS of a `tls://` address. Paths are relative to the pattern file.

    The certificate and its key come either as PEM files (`cert` and `key`; `password`
    if the key is encrypted) or as one PKCS#12 file (`pkcs12`, the `.p12` a TAK
    Server's certificate tool or enrollment hands out, with its `password`). `ca` is
    the CA bundle (PEM) that verifies the peer: for the output the TAK server
    (default: the system CAs), for the input its clients, each of which must then
    present a certificate signed by it (`verify: false` makes that optional). The
    output checks the server's name against `server_name` (default: the host it
    connects to); `verify: false` skips both checks.
    """

    pkcs12: Annotated[
        str | None, Meta(description="certificate, key and chain in one PKCS#12 file, instead of cert/key")
    ] = None
    password: Annotated[str | None, Meta(description="password of `pkcs12`, or of an encrypted `key`")] = None


def check_tls(tls: TakTlsOptions | None, scheme: str, server: bool) -> None:
    """ValueError at its key for TLS options that cannot be used."""
    if tls is None:
        if scheme == "tls" and server:
            raise ValueError("a tls:// listener needs `tls:` with its certificate - at `$.address`")
        return
    if scheme != "tls":
        raise ValueError(f"TLS options need a tls:// address (this one is {scheme}://) - at `$.tls`")
    if tls.pkcs12 is not None:
        if tls.cert is not None or tls.key is not None:
            raise ValueError("either `pkcs12` or `cert` and `key`, not both - at `$.tls.pkcs12`")
        if server and tls.server_name is not None:
            raise ValueError("only a client checks a server name - at `$.tls.server_name`")
        return
    if tls.password is not None and tls.key is None:
        raise ValueError("a password is for `pkcs12` or an encrypted `key` - at `$.tls.password`")
    tlsmod.check(tls, server)


class TakOutputConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Send Cursor-on-Target events to TAK: each message is encoded with the entry's
    `format:` (`cot` by default: give it `{type: cot, set: {...}}` to build the
    events from your messages' fields) and sent to `address`:

    - `udp://239.2.3.1:6969`, the multicast group ATAK, WinTAK and iTAK listen on by
      default (SA multicast), one event per datagram, sent through `interface` (a
      name such as `wlan0` or its IPv4 address), with `ttl` hops (0: this host only,
      1: this link) and `loopback` deciding whether listeners on this host get them
      too; or a unicast address (`udp://192.168.1.20:4242`), or a broadcast address
      with `broadcast: true`. A datagram is confirmed once the kernel took it: UDP has
      no acknowledgement at all.
    - `tcp://host:8087`, a TAK server's plain streaming port, or `tls://host:8089`,
      its TLS port, with `tls:` naming the client certificate (PEM or PKCS#12) and
      the CA. The events are written one after the other on one connection, as TAK
      clients do; the connection is reopened with a doubling, jittered delay
      (`reconnect_initial` up to `reconnect_max`) whenever it drops. What the server
      sends back (other clients' events) is read and discarded.

    TAK streaming has no application-level acknowledgement: a message counts as
    delivered once it is written to a connected socket and drained there. While the
    server is away the messages wait in the output's buffer (the outbox), however
    long that takes, and go out once it is back; bytes still in the kernel's buffers
    when a server vanishes are lost (at-most-once for those).

    With `protocol: mesh` in the cot format's options, datagrams carry TAK protocol
    version 1 instead of XML (as ATAK's mesh does once set to it); `protocol:
    stream` writes its stream frames on a connection, for a peer that reads them at
    once, such as wireway's tak input (a TAK server takes them only after a
    negotiation on the connection, which this output does not do: send it XML).
    """

    address: Annotated[
        str,
        Meta(
            description="udp://IP:port, tcp://host:port or tls://host:port", examples=["udp://239.2.3.1:6969"]
        ),
    ]
    tls: Annotated[TakTlsOptions | None, Meta(description="for tls://: certificates (see below)")] = None
    interface: Annotated[
        str | None, Meta(description="udp group: the interface (name or IPv4 address) to send through")
    ] = None
    ttl: Annotated[int, Meta(ge=0, le=255, description="udp group: hops a datagram may take")] = 1
    loopback: Annotated[bool, Meta(description="udp group: deliver to listeners on this host too")] = True
    broadcast: Annotated[bool, Meta(description="udp: allow a broadcast address (SO_BROADCAST)")] = False
    max_datagram_bytes: Annotated[
        int, Meta(ge=1, le=MAX_DATAGRAM, description="udp: a longer event goes to the dead-letter queue")
    ] = MAX_DATAGRAM
    connect_timeout: Annotated[
        float, Meta(gt=0, description="tcp/tls: seconds for a connection attempt (TLS handshake included)")
    ] = 5.0
    reconnect_initial: Annotated[
        float, Meta(gt=0, description="tcp/tls: seconds before the first reconnect")
    ] = 0.5
    reconnect_max: Annotated[
        float, Meta(gt=0, description="tcp/tls: cap of the doubling reconnect delay")
    ] = 30.0
    reconnect_jitter: Annotated[
        float, Meta(ge=0, le=1, description="tcp/tls: part of each delay taken off at random (0: none)")
    ] = 0.2

    def __post_init__(self) -> None:
        address = parse_address(self.address)
        udp = address.scheme == "udp"
        only_for(self, UDP_OUTPUT, udp, "a udp:// address")
        only_for(self, STREAM_OUTPUT, not udp, "a tcp:// or tls:// address")
        if udp and not address.group:
            only_for(self, ("interface", "ttl", "loopback"), False, "a multicast group address")
        check_interface(self.interface, address.group)
        check_tls(self.tls, address.scheme, server=False)
        if self.reconnect_initial > self.reconnect_max:
            raise ValueError("must not exceed reconnect_max - at `$.reconnect_initial`")


class TakInputConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Receive Cursor-on-Target events from TAK; each event is a message, decoded with
    the `cot` format: XML, or TAK protocol version 1 (mesh datagrams, stream frames),
    into `{uid, type, how, time, start, stale, point: {lat, lon, hae, ce, le},
    detail, protocol}`. An event that does not decode, or is longer than
    `max_event_bytes`, goes to the dead-letter queue (counted there).

    `address` is what to listen on:

    - `udp://239.2.3.1:6969`, a multicast group (TAK's SA multicast), joined on
      `interface` (a name such as `wlan0`, or its IPv4 address; default: the
      system's choice); one event per datagram. With `reuse_port` (on by default)
      other programs on this host can listen to the same group and port. The
      datagrams that arrive while a batch is being stored make the next batch;
      beyond `max_pending` of them the newest are dropped (and logged), as the
      kernel drops them when its receive buffer is full. A unicast or broadcast
      listener is `udp://0.0.0.0:4242`.
    - `tcp://0.0.0.0:8087`, a TCP server TAK clients stream events to (an ATAK
      "TAK server" connection, or pytak), or `tls://0.0.0.0:8089` with `tls:`
      naming the server's certificate and, with `tls.ca`, requiring a client
      certificate signed by that CA. XML events follow one another without a
      delimiter: each is cut after its `</event>` (an `<?xml ...?>` declaration or
      whitespace between them is fine); TAK protocol v1 stream frames (`0xbf`, a
      varint length, the protobuf) are cut by their length. A connection is read
      batch by batch; nothing is answered (TAK has no acknowledgement), so a
      client's events in flight when wireway stops are lost to it.
    """

    address: Annotated[
        str,
        Meta(
            description="udp://IP:port, tcp://host:port or tls://host:port", examples=["udp://239.2.3.1:6969"]
        ),
    ]
    tls: Annotated[TakTlsOptions | None, Meta(description="for tls://: certificates (see below)")] = None
    interface: Annotated[
        str | None, Meta(description="udp group: the interface (name or IPv4 address) to join it on")
    ] = None
    reuse_port: Annotated[
        bool, Meta(description="udp: share the port with other listeners (SO_REUSEPORT)")
    ] = True
    receive_buffer: Annotated[
        Annotated[int, Meta(ge=1024)] | None,
        Meta(description="udp: kernel receive buffer in bytes (SO_RCVBUF), for bursts"),
    ] = None
    max_pending: Annotated[
        int, Meta(ge=1, description="udp: datagrams held while a batch is being stored; more are dropped")
    ] = 10_000
    max_event_bytes: Annotated[
        int, Meta(ge=64, description="a longer event (or datagram) goes to the dead-letter queue")
    ] = 1024 * 1024

    def __post_init__(self) -> None:
        address = parse_address(self.address)
        only_for(self, UDP_INPUT, address.scheme == "udp", "a udp:// address")
        check_interface(self.interface, address.group)
        check_tls(self.tls, address.scheme, server=True)

    def resources(self, base_dir: Path) -> list[str]:
        address = parse_address(self.address)
        if address.scheme != "udp":
            return [f"tcp port {address.port}"]
        return [] if self.reuse_port else [f"udp {address.host}:{address.port}"]
