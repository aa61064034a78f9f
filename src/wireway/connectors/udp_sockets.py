"""UDP sockets, shared by the udp and tak connectors: listening (unicast, broadcast,
a multicast group joined on an interface) and sending (broadcast, multicast
interface, TTL, loopback)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from wireway.connectors import mmsg
from wireway.envelope import Message
from wireway.errors import RetryableError, WirewayError

ANY = "0.0.0.0"
SEND_TIMEOUT = 5.0  # seconds a send may wait for room in a full send buffer
ON_THE_THREAD = 64  # batches of this many datagrams or more are sent from the thread


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


def records(
    batch: list[Message], encode: Callable[[Message], bytes], max_bytes: int
) -> tuple[list[bytes], list[int], dict[int, str]]:
    """The batch's datagrams and the index of each one's message; {index: reason} of
    the messages that give none (not encodable, or over `max_bytes`)."""
    datagrams: list[bytes] = []
    indexes: list[int] = []
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
        datagrams.append(data)
        indexes.append(i)
    return datagrams, indexes, refused


class DatagramSender(asyncio.DatagramProtocol):
    """Sends one record per datagram from a socket of `sending`: keeps the send errors
    and waits while the transport's buffer is over its limit.

    Where the system has `sendmmsg` (Linux), a batch's datagrams go out in one call on
    a thread of the sender's own (see mmsg.py), so the kernel's work for them runs
    beside the event loop; elsewhere, and for a target given by name, one `sendto`
    at a time through the event loop's transport."""

    def __init__(self) -> None:
        self.error: OSError | None = None
        self.room = asyncio.Event()
        self.room.set()
        self.transport: asyncio.DatagramTransport | None = None
        self.sock: socket.socket | None = None
        self.thread: ThreadPoolExecutor | None = None
        self.batches: mmsg.BatchSend | None = None  # on the event loop
        self.thread_batches: mmsg.BatchSend | None = None  # on `thread`

    @classmethod
    async def open(cls, sock: socket.socket, batched: bool | None = None) -> DatagramSender:
        """`batched`: send through `sendmmsg` (None: wherever the system has it)."""
        if mmsg.available() if batched is None else batched:
            sender = cls()
            sender.sock = sock
            sender.batches = mmsg.BatchSend(sock, SEND_TIMEOUT)
            sender.thread_batches = mmsg.BatchSend(sock, SEND_TIMEOUT)
            sender.thread = ThreadPoolExecutor(1, thread_name_prefix="wireway-udp-send")
            return sender
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
        datagrams, indexes, refused = records(batch, encode, max_bytes)
        if self.batches is None:
            await self.send_each(datagrams, indexes, refused, target, label)
            return refused or None
        loop = asyncio.get_running_loop()
        try:
            address = await self.sockaddr(target)
            failed: dict[int, int] = {}
            done = 0
            if len(datagrams) < ON_THE_THREAD:  # a few: handing them over costs more
                failed, done = self.batches.send(address, datagrams, wait=False)
            if done < len(datagrams):
                rest = datagrams[done:]
                if self.thread is None:
                    raise RetryableError(f"{label}: the output is closed")
                assert self.thread_batches is not None
                send = self.thread_batches.send
                more, _ = await loop.run_in_executor(self.thread, send, address, rest)
                failed.update((done + at, code) for at, code in more.items())
        except TimeoutError:
            raise RetryableError(f"{label}: the send buffer stayed full for {SEND_TIMEOUT:g}s") from None
        except OSError as exc:
            raise RetryableError(f"{label}: {exc.strerror or exc}") from exc
        for at, code in failed.items():
            size = len(datagrams[at])
            refused[indexes[at]] = f"{size} bytes: too long for the network ({os.strerror(code)})"
        return refused or None

    async def sockaddr(self, target: tuple[str, int]) -> bytes:
        """The target's `sockaddr`; a name is looked up for every batch, as `sendto`
        would for every datagram (OSError when it cannot be)."""
        host, port = target
        address = mmsg.sockaddr(host, port)
        if address is None:
            assert self.sock is not None
            loop = asyncio.get_running_loop()
            found = await loop.getaddrinfo(host, port, family=self.sock.family, type=socket.SOCK_DGRAM)
            address = mmsg.sockaddr(str(found[0][4][0]), port)
            if address is None:
                raise OSError(errno.EADDRNOTAVAIL, f"{host} has no address to send to")
        return address

    async def send_each(
        self,
        datagrams: list[bytes],
        indexes: list[int],
        refused: dict[int, str],
        target: tuple[str, int],
        label: str,
    ) -> None:
        """`send`, one `sendto` at a time through the transport (`refused` gains the
        datagrams the network refuses)."""
        transport = self.transport
        assert transport is not None
        for i, data in zip(indexes, datagrams, strict=True):
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

    def close(self) -> None:
        thread, self.thread = self.thread, None
        if thread is not None and self.sock is not None:
            # on the thread, after a send still under way there: its file descriptor
            # must not be closed (and perhaps reused) in the middle of a batch
            thread.submit(self.sock.close)
            thread.shutdown(wait=False, cancel_futures=False)
        if self.transport is not None:
            self.transport.close()
