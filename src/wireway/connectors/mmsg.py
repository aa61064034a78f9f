"""Many datagrams in one `sendmmsg(2)` call, made through ctypes.

Python's standard library sends one datagram per call. Most of a datagram's cost is
the kernel's (routing it and, on loopback or with a multicast group's loopback on,
handing a copy to each local listener), and a ctypes call lets go of the GIL for the
whole batch, so from a thread of its own that kernel work runs beside the event loop
instead of on it. A thread sending datagram by datagram would not: it would wait for
the GIL after every `sendto` while the event loop is busy.

Linux (glibc or musl) has `sendmmsg`; elsewhere `available()` is false and callers
send one datagram at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import ipaddress
import os
import select
import socket
import struct
import time
from collections.abc import Sequence


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


def _load() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)  # CDLL calls release the GIL
        function = libc.sendmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_sendmmsg = _load()
_MMSG_SIZE = ctypes.sizeof(_Mmsghdr)


def available() -> bool:
    return _sendmmsg is not None


def sockaddr(host: str, port: int) -> bytes | None:
    """The `struct sockaddr` of a numeric address (None for a name: it needs resolving;
    OSError for a link-local address on an interface this machine does not have)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 4:  # sockaddr_in: family (host order), port, address, zero
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + ip.packed + bytes(8)
    # sockaddr_in6: family, port, flow info, address, scope id (a link-local address's
    # interface, `fe80::1%eth0`)
    scope = ip.scope_id if isinstance(ip, ipaddress.IPv6Address) else None
    index = 0 if not scope else int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
    return (
        struct.pack("=H", socket.AF_INET6)
        + struct.pack("!HI", port, 0)
        + ip.packed
        + struct.pack("=I", index)
    )


class BatchSend:
    """Sends batches of datagrams from one socket; used by one thread at a time (its
    arrays are reused from batch to batch)."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.fd = sock.fileno()
        self.timeout = timeout
        self._address = b""
        self._name = ctypes.create_string_buffer(28)  # room for a sockaddr_in6
        self._capacity = 0
        self._iovecs: ctypes.Array[_Iovec] | None = None
        self._headers: ctypes.Array[_Mmsghdr] | None = None

    def _arrays(self, count: int, address: bytes) -> tuple[ctypes.Array[_Iovec], ctypes.Array[_Mmsghdr]]:
        if address != self._address:
            ctypes.memmove(self._name, address, len(address))
            self._address = address
            self._capacity = 0  # the headers hold the address's length
        if self._iovecs is None or self._headers is None or count > self._capacity:
            capacity = max(count, 2 * self._capacity, 64)
            iovecs = (_Iovec * capacity)()
            headers = (_Mmsghdr * capacity)()
            name, size = ctypes.addressof(self._name), len(address)
            first, step = ctypes.addressof(iovecs), ctypes.sizeof(_Iovec)
            for i in range(capacity):  # each header points at its own iovec, once
                header = headers[i].msg_hdr
                header.msg_name, header.msg_namelen = name, size
                header.msg_iov, header.msg_iovlen = first + i * step, 1
            self._iovecs, self._headers, self._capacity = iovecs, headers, capacity
        return self._iovecs, self._headers

    def send(
        self, address: bytes, datagrams: Sequence[bytes], wait: bool = True
    ) -> tuple[dict[int, int], int]:
        """Send the datagrams to `address` (a `sockaddr`): ({index: errno} of those the
        kernel refused for good (EMSGSIZE), how many were done with). Any other error
        raises OSError. A full send buffer is waited for up to `timeout` seconds
        (TimeoutError after that), or, with `wait` false, ends the call early: the
        rest is for a call that may wait (not on an event loop)."""
        assert _sendmmsg is not None, "sendmmsg is not available here"
        count = len(datagrams)
        if not count:
            return {}, 0
        iovecs, headers = self._arrays(count, address)
        blob = b"".join(datagrams)  # one buffer, kept alive by this frame during the calls
        at = ctypes.cast(ctypes.c_char_p(blob), ctypes.c_void_p).value or 0
        for i, data in enumerate(datagrams):
            iovec = iovecs[i]
            iovec.iov_base = at
            iovec.iov_len = size = len(data)
            at += size
        base = ctypes.addressof(headers)
        refused: dict[int, int] = {}
        deadline = 0.0
        done = 0
        while done < count:
            sent = _sendmmsg(self.fd, base + done * _MMSG_SIZE, count - done, 0)
            if sent > 0:
                done += sent
                deadline = 0.0
                continue
            # -1 and errno; 0 (nothing taken, which it does not do) is waited on as full
            code = ctypes.get_errno() if sent < 0 else errno.EAGAIN
            if code == errno.EINTR:
                continue
            if code == errno.EMSGSIZE:  # this one datagram: the next call goes on after it
                refused[done] = code
                done += 1
                continue
            if code in (errno.EAGAIN, errno.ENOBUFS):
                if not wait:
                    break
                now = time.monotonic()
                deadline = deadline or now + self.timeout
                if now >= deadline:
                    raise TimeoutError(f"the send buffer stayed full for {self.timeout:g}s")
                _writable(self.fd, deadline - now)
                continue
            raise OSError(code, os.strerror(code))
        return refused, done


def _writable(fd: int, seconds: float) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    poller.poll(max(1, int(seconds * 1000)))
