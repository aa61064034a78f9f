"""UDP sockets, shared by the udp and tak connectors: listening (unicast, broadcast,
a multicast group joined on an interface) and sending (broadcast, multicast
interface, TTL, loopback)."""

from __future__ import annotations

import ipaddress
import socket
import struct

from wireway.errors import WirewayError

ANY = "0.0.0.0"


def membership(group: str, interface: str | None) -> bytes:
    """A `struct ip_mreqn`: the group, and the interface by address or by index."""
    address, index = ANY, 0
    if interface is not None:
        try:
            address = str(ipaddress.IPv4Address(interface))
        except ValueError:
            index = interface_index(interface)
    return struct.pack("4s4si", socket.inet_aton(group), socket.inet_aton(address), index)


def interface_index(name: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError as exc:
        raise WirewayError(f"no network interface named `{name}`") from exc


def listening(
    host: str, port: int, group: bool, interface: str | None, reuse_port: bool, receive_buffer: int | None
) -> socket.socket:
    """A bound, non-blocking socket; a group address is bound (so only that group's
    datagrams arrive on it) and joined."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((host, port))
        if group:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership(host, interface))
    except OSError as exc:
        sock.close()
        raise WirewayError(f"cannot listen on udp {host}:{port}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


def sending(
    host: str, group: bool, broadcast: bool, interface: str | None, ttl: int, loopback: bool
) -> socket.socket:
    """A non-blocking socket to send from (not connected: any number of receivers)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if group:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(loopback))
            if interface is not None:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, membership(ANY, interface))
    except OSError as exc:
        sock.close()
        raise WirewayError(f"cannot set up the udp socket: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock
