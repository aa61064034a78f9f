"""Security headers on every response of the ASGI app, the fast ingest paths too.

`X-Content-Type-Options: nosniff` goes on every response as one of the server's
default headers (so also on the answers the server writes itself: 400, 408, 431,
500); this wrapper adds, by the response's content type:

- an HTML page: `Content-Security-Policy` (its own origin only, never framed) and
  `X-Frame-Options: DENY`;
- anything else (the API): `Cache-Control: no-store`, unless the response set its own.

A raw ASGI wrapper of `send` rather than a Starlette middleware: it costs one call
per message sent, and the ingest routes that bypass Starlette's stack get it too.
CORS is off (no CORS headers: browsers keep other origins' pages out) unless
`security.cors_origins` lists origins: a request from one of those gets
`Access-Control-Allow-Origin` with its origin, and its preflight (OPTIONS with
`Access-Control-Request-Method`) is answered 204 here. No credentials (cookies) are
allowed: API keys travel in headers.
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


CORS_METHODS = b"GET, POST, PUT, DELETE"
CORS_MAX_AGE = b"600"


def cors_origin(scope: Scope, origins: frozenset[bytes]) -> tuple[bytes | None, bytes | None]:
    """(the request's Origin if it is allowed, the method its preflight asks for)."""
    origin = wanted = None
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value
        elif name == b"access-control-request-method":
            wanted = value
    return (origin if origin in origins else None), wanted


class SecurityHeaders:
    """Wraps an ASGI app; adds the headers above to each HTTP response it starts."""

    def __init__(self, app: ASGIApp, cors_origins: list[str] | None = None) -> None:
        self.app = app
        self.origins = frozenset(o.rstrip("/").encode() for o in cors_origins or ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cors: list[tuple[bytes, bytes]] = []
        if self.origins:
            origin, wanted = cors_origin(scope, self.origins)
            if origin is not None:
                cors = [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
                if scope["method"] == "OPTIONS" and wanted is not None:
                    await self.preflight(scope, send, cors)
                    return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                message["headers"] = headers + added_headers(headers) + cors
            await send(message)

        await self.app(scope, receive, send_secured)

    @staticmethod
    async def preflight(scope: Scope, send: Send, cors: list[tuple[bytes, bytes]]) -> None:
        asked = next((v for n, v in scope["headers"] if n == b"access-control-request-headers"), b"")
        headers = [
            *cors,
            (b"access-control-allow-methods", CORS_METHODS),
            (b"access-control-allow-headers", asked),
            (b"access-control-max-age", CORS_MAX_AGE),
            *API_HEADERS,
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
