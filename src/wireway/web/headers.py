"""Security headers on every response of the ASGI app, the fast ingest paths too.

`X-Content-Type-Options: nosniff` goes on every response as one of the server's
default headers (so also on the answers the server writes itself: 400, 408, 431,
500); this wrapper adds, by the response's content type:

- an HTML page: `Content-Security-Policy` (its own origin only, never framed) and
  `X-Frame-Options: DENY`;
- anything else (the API): `Cache-Control: no-store`, unless the response set its own.

A raw ASGI wrapper of `send` rather than a Starlette middleware: it costs one call
per message sent, and the ingest routes that bypass Starlette's stack get it too.
No CORS headers are sent: browsers keep other origins out.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")
PAGE_POLICY = (
    b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    b"script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; "
    b"base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = [(b"content-security-policy", PAGE_POLICY), (b"x-frame-options", b"DENY")]
API_HEADERS = [(b"cache-control", b"no-store")]


def added_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """What to add to a response with these headers (names lower case, as ASGI has them)."""
    page = False
    cache = False
    for name, value in headers:
        if name == b"content-type":
            page = value.startswith(b"text/html")
        elif name == b"cache-control":
            cache = True
    if page:
        return PAGE_HEADERS
    return [] if cache else API_HEADERS


class SecurityHeaders:
    """Wraps an ASGI app; adds the headers above to each HTTP response it starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                message["headers"] = headers + added_headers(headers)
            await send(message)

        await self.app(scope, receive, send_secured)
