"""Acknowledging at once what a subscriber's socket read (TCP_QUICKACK, Linux).

A broker that keeps Nagle's algorithm on (Mosquitto's default) sends a small packet at
once only while nothing it sent is unacknowledged; the next ones wait for the
receiver's ACK, which the kernel delays (tens of ms) unless it has data to send with
it. A subscriber that PUBACKs only after storing would then get messages in bursts, one
burst per PUBACK, each message waiting a whole cycle before its batch even starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket


class QuickAck:
    """TCP_QUICKACK on a connection's socket, set again after each read (the kernel
    clears it as it goes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock

    @classmethod
    def of(cls, transport: asyncio.BaseTransport) -> QuickAck | None:
        """For a TCP transport on Linux, else None. The socket object is our own, on a
        duplicate descriptor (closed with `close`): uvloop's stand-in for the
        transport's socket builds a new socket object for every setsockopt."""
        if not hasattr(socket, "TCP_QUICKACK"):
            return None
        sock = transport.get_extra_info("socket")
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        with contextlib.suppress(OSError):
            return cls(socket.socket(fileno=os.dup(sock.fileno())))
        return None

    def now(self) -> None:
        """Acknowledge what has arrived now, and the next segments at once."""
        sock = self.sock
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except OSError:
                self.close()

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
