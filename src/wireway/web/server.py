"""The process's HTTP server settings: uvicorn with bounded requests, security
headers and, when configured, HTTPS.

A request must arrive whole (request line, headers and body) within
`security.body_timeout` seconds of its first byte (of the connection's opening for
the first request): a slower one is answered 408 and its connection closed, so a
client trickling bytes cannot hold a connection. The request line is at most
`MAX_URL_BYTES` (else 414), the headers at most `MAX_HEADERS` fields and
`MAX_HEADER_BYTES` in all (else 431).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from wireway.config.model import Pattern
from wireway.connectors.bodies import TIMED_OUT
from wireway.errors import WirewayError
from wireway.web.headers import NOSNIFF, SecurityHeaders

MAX_URL_BYTES = 8 * 1024
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
REASONS = {408: b"Request Timeout", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class _TooBig(Exception):
    """Raised inside a parser callback: httptools reports it as a parser error."""


class BoundedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline per request and bounded headers."""

    body_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline: asyncio.TimerHandle | None = None
        self.in_request = False
        self.refusal: tuple[int, str] | None = None
        self.header_count = 0
        self.header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm()  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        super().connection_lost(exc)

    def arm(self) -> None:
        if self.deadline is None:
            self.deadline = self.loop.call_later(self.body_timeout, self.too_slow)

    def disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_request = True
        self.header_count = self.header_bytes = 0
        self.arm()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self.refusal = (414, f"request line longer than {MAX_URL_BYTES} bytes")
            raise _TooBig

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        self.header_bytes += len(name) + len(value)
        if self.header_count > MAX_HEADERS or self.header_bytes > MAX_HEADER_BYTES:
            self.refusal = (431, f"more than {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes of them")
            raise _TooBig
        super().on_header(name, value)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_request = False
        self.disarm()

    def handle_websocket_upgrade(self) -> None:
        self.disarm()  # the WebSocket protocol keeps its own time (pings)
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if self.refusal is None:
            super().send_400_response(msg)
        else:
            self.refuse(*self.refusal)

    def too_slow(self) -> None:
        """The deadline passed: close, with a 408 if a request had begun and no
        response has started."""
        self.deadline = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        cycle = self.cycle if self.cycle is not None and self.cycle.scope is self.scope else None
        if not self.in_request or (cycle is not None and cycle.response_started):
            self.transport.close()
            return
        if cycle is not None:  # the app is waiting for the body: it is told the client left
            self.scope[TIMED_OUT] = True  # type: ignore[literal-required]
            cycle.disconnected = True
            cycle.message_event.set()
        self.refuse(408, f"request not received within {self.body_timeout:g} seconds")

    def refuse(self, status: int, message: str) -> None:
        body = b'{"error":"' + message.encode() + b'"}'
        head = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status])]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head.append(
            b"content-type: application/json\r\ncache-control: no-store\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def bounded_protocol(body_timeout: float) -> type[BoundedHttp]:
    """BoundedHttp with this deadline (uvicorn builds the protocol from the class)."""
    return type("BoundedHttp", (BoundedHttp,), {"body_timeout": body_timeout})


def server_config(app: ASGIApp, patterns: list[Pattern]) -> uvicorn.Config:
    """uvicorn's settings for the process's one HTTP server, from the patterns'
    `security:` sections (the shortest body_timeout; one certificate)."""
    timeout = min((p.security.body_timeout for p in patterns), default=10.0)
    cert, key = tls_files(patterns)
    origins = sorted({o for p in patterns for o in p.security.cors_origins})
    return bounded_config(app, body_timeout=timeout, tls_cert=cert, tls_key=key, cors_origins=origins)


def bounded_config(
    app: ASGIApp,
    *,
    body_timeout: float = 10.0,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    cors_origins: list[str] | None = None,
    **options: Any,
) -> uvicorn.Config:
    """uvicorn's settings for any of wireway's HTTP servers: requests bounded in time
    and size, security headers, CORS for the origins given, HTTPS with a
    certificate; `options` go to uvicorn."""
    settings: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "timeout_graceful_shutdown": 5,
        "loop": "none",
        **options,
    }
    return uvicorn.Config(
        SecurityHeaders(app, cors_origins),
        http=bounded_protocol(body_timeout),
        headers=[(NOSNIFF[0].decode(), NOSNIFF[1].decode())],
        server_header=False,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        **settings,
    )


def tls_files(patterns: list[Pattern]) -> tuple[str | None, str | None]:
    """The certificate and key files the patterns name (checked: they load), or Nones."""
    found: set[tuple[str, str]] = set()
    for p in patterns:
        sec = p.security
        if not sec.tls_cert and not sec.tls_key:
            continue
        if not (sec.tls_cert and sec.tls_key):
            raise WirewayError(f"{p.file}: security: tls_cert and tls_key go together (one is missing)")
        found.add((str(p.base_dir / Path(sec.tls_cert)), str(p.base_dir / Path(sec.tls_key))))
    if not found:
        return None, None
    if len(found) > 1:
        raise WirewayError(
            "security.tls_cert: the patterns name different certificates; "
            "the process has one HTTP server, so give them all the same one"
        )
    cert, key = found.pop()
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise WirewayError(f"security.tls_cert {cert} / tls_key {key}: cannot be loaded: {exc}") from None
    return cert, key


def scheme(patterns: list[Pattern]) -> str:
    """http, or https when the patterns give a certificate."""
    return "https" if any(p.security.tls_cert for p in patterns) else "http"
