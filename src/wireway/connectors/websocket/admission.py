"""Letting a WebSocket client in: the greeting and, with an `authenticate` hook, its check.

A client authenticates with the `X-API-Key` or `Authorization` header, the
`api_key` / `token` query parameter, or a first message
`{"type": "auth", "api_key": ...}` sent within `auth_timeout` seconds of the
greeting. A client that fails gets `{"type": "error", "message": "Unauthorized"}`
and close code 4401.

The hook answers None (let in, every message), a reason (refused), or a `Scope`
(let in, limited to it for the whole connection; a mapping is taken as its
`fields`). Any other answer, or an exception, refuses: a mistake in a hook closes
the door rather than opening it wide.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from wireway.connectors.websocket.clients import Client, Scope
from wireway.envelope import now_rfc3339
from wireway.observability import logging as log

logger = log.get("websocket")

Verdict = str | Scope | Mapping[str, Any] | None
"""An `Authenticate` answer: None (allowed), a reason (refused), a scope (allowed within it)."""

Authenticate = Callable[[dict[str, str], dict[str, str], dict[str, Any] | None], Awaitable[Verdict]]
"""(headers, query, first message or None) -> a `Verdict`."""

UNAUTHORIZED_CLOSE = 4401
CONNECTED_MESSAGE = "Connected to wireway live stream"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def encode_text(message: dict[str, Any]) -> str:
    """A message as the text frame sent to clients."""
    return _encoder.encode(message).decode()


def parse(message: Mapping[str, Any]) -> Any:
    """A received ASGI message's JSON value, or None when it is not JSON."""
    data = message.get("text")
    if data is None:
        data = message.get("bytes")
    if data is None:
        return None
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError:
        return None


async def admit(client: Client, check: Authenticate | None, auth_timeout: float) -> bool:
    """Greet the client and, with `check` set, authenticate it first (setting its
    `scope` when the check gives one); False: refused."""
    ws = client.websocket
    connected = {"type": "connected", "message": CONNECTED_MESSAGE}
    if check is None:
        await ws.send_text(encode_text({**connected, "timestamp": now_rfc3339()}))
        return True
    headers = dict(ws.headers.items())
    query = dict(ws.query_params.items())
    reason = await _ask(check, client, headers, query, None)
    if reason is None:
        await ws.send_text(encode_text({**connected, "timestamp": now_rfc3339()}))
        return True
    offered = any(h in headers for h in ("x-api-key", "authorization")) or any(
        q in query for q in ("api_key", "token")
    )
    if offered:
        return await _reject(client, reason)
    await ws.send_text(encode_text({**connected, "timestamp": now_rfc3339()}))
    try:
        message = await asyncio.wait_for(ws.receive(), auth_timeout)
    except TimeoutError:
        return await _reject(client, "no auth message in time")
    if message["type"] == "websocket.disconnect":
        return False
    first = parse(message)
    if not isinstance(first, dict) or first.get("type") != "auth":
        return await _reject(client, "first message is not auth")
    reason = await _ask(check, client, headers, query, first)
    if reason is not None:
        return await _reject(client, reason)
    await ws.send_text(encode_text({"type": "authenticated", "timestamp": now_rfc3339()}))
    return True


async def _ask(
    check: Authenticate,
    client: Client,
    headers: dict[str, str],
    query: dict[str, str],
    first: dict[str, Any] | None,
) -> str | None:
    """None when the client is let in (its scope set), else the reason it is not."""
    try:
        verdict = await check(headers, query, first)
    except Exception as exc:  # noqa: BLE001  (a failing hook refuses, it does not crash)
        logger.warning("websocket authentication failed", error=str(exc))
        return f"authentication error: {exc}"
    if verdict is None:
        client.scope = None
        return None
    if isinstance(verdict, str):
        return verdict
    if isinstance(verdict, Scope):
        client.scope = verdict
        return None
    if isinstance(verdict, Mapping):
        client.scope = Scope(verdict)
        return None
    logger.warning("websocket authentication hook gave no verdict", answer=type(verdict).__name__)
    return "authentication error: the hook answered neither None, a reason nor a scope"


async def _reject(client: Client, reason: str) -> bool:
    logger.info("websocket client refused", peer=client.peer, reason=reason)
    with contextlib.suppress(Exception):
        await client.websocket.send_text(encode_text({"type": "error", "message": "Unauthorized"}))
        await client.websocket.close(UNAUTHORIZED_CLOSE, "Unauthorized")
    return False
