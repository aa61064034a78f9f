"""Sockets the fault tests own: a TCP listener that counts what it was sent, and a
TCP proxy between wireway and a server that the test cuts."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections import Counter


class TcpListener:
    """A TCP server that keeps every byte it is sent; counts seqs by a regex."""

    def __init__(self, pattern: bytes) -> None:
        self.regex = re.compile(pattern)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.streams: list[bytearray] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            buf = bytearray()
            with self.lock:
                self.streams.append(buf)
            threading.Thread(target=self._read, args=(conn, buf), daemon=True).start()

    def _read(self, conn: socket.socket, buf: bytearray) -> None:
        conn.settimeout(0.5)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    buf.extend(data)

    def seqs(self) -> Counter[int]:
        with self.lock:
            streams = [bytes(b) for b in self.streams]
        return Counter(int(m.group(1)) for s in streams for m in self.regex.finditer(s))

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


class TcpProxy:
    """A TCP proxy the test owns between wireway and a server; `cut()` drops every
    connection through it at once (new ones are accepted again right away)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.cuts = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(None)
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> int:
        """Reset every connection through the proxy; returns how many."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
        self.cuts += len(pairs)
        return len(pairs)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self.cut()
