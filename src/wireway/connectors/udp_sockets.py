"""UDP sockets, shared by the udp and tak connectors: listening (unicast, broadcast,
a multicast group joined on an interface) and sending (broadcast, multicast
interface, TTL, loopback)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import struct
from collections.abc import Callable

from wireway.envelope import Message
from wireway.errors import RetryableError, WirewayError

ANY = "0.0.0.0"
SEND_TIMEOUT = 5.0  # seconds a send may wait for room in a full send buffer


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


def check_interface(interface: str | None, group: bool) -> None:
    """An interface is a name this machine has (`lo`, `eth0`) or an IPv4 address, and
    only for a multicast group (ValueError at `$.interface` otherwise)."""
    if interface is None:
        return
    if not group:
        raise ValueError("an interface is only for a multicast group address - at `$.interface`")
    try:
        ipaddress.IPv4Address(interface)
        return
    except ValueError:
        pass
    try:
        socket.if_nametoindex(interface)
    except OSError:
        raise ValueError(f"no network interface named `{interface}` here - at `$.interface`") from None


class DatagramSender(asyncio.DatagramProtocol):
    """Sends one record per datagram from a socket of `sending`: keeps the send errors
    and waits while the transport's buffer is over its limit."""

    def __init__(self) -> None:
        self.error: OSError | None = None
        self.room = asyncio.Event()
        self.room.set()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, sock: socket.socket) -> DatagramSender:
        loop = asyncio.get_running_loop()
        transport, sender = await loop.create_datagram_endpoint(cls, sock=sock)
        sender.transport = transport
        return sender

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.error = exc

    def pause_writing(self) -> None:
        self.room.clear()

    def resume_writing(self) -> None:
        self.room.set()

    async def send(
        self,
        batch: list[Message],
        encode: Callable[[Message], bytes],
        target: tuple[str, int],
        max_bytes: int,
        label: str,
    ) -> dict[int, str] | None:
        """Send each message's record; {index: reason} for those refused for good (too
        big, or not encodable). A send error raises RetryableError naming `label`."""
        transport = self.transport
        assert transport is not None
        refused: dict[int, str] = {}
        for i, msg in enumerate(batch):
            try:
                data = encode(msg)
            except ValueError as exc:
                refused[i] = str(exc)
                continue
            if len(data) > max_bytes:
                refused[i] = f"{len(data)} bytes: over max_datagram_bytes ({max_bytes})"
                continue
            if not self.room.is_set():
                try:
                    async with asyncio.timeout(SEND_TIMEOUT):
                        await self.room.wait()
                except TimeoutError:
                    raise RetryableError(
                        f"{label}: the send buffer stayed full for {SEND_TIMEOUT:g}s"
                    ) from None
            transport.sendto(data, target)
            error, self.error = self.error, None
            if error is not None:
                if error.errno == errno.EMSGSIZE:
                    refused[i] = f"{len(data)} bytes: too long for the network ({error.strerror})"
                    continue
                raise RetryableError(f"{label}: {error.strerror or error}") from error
        buffered = getattr(transport, "get_write_buffer_size", lambda: 0)
        for _ in range(1000):  # what the kernel could not take at once, bounded
            if buffered() == 0:
                break
            await asyncio.sleep(0.001)
        return refused or None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
