"""Kismet's eventbus websocket: subscribe to topics, one message per event."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from websockets.asyncio.client import connect

from wireway.envelope import Message, new_message_id
from wireway.observability import logging as log

logger = log.get("kismet")

FIRST_RETRY = 1.0  # longest wait before the first retry (then doubling up to max_backoff)
JITTER = 0.1  # +-10% on each retry wait, so clients of one server do not retry in step
PATH = "/eventbus/events.ws"

Deliver = Callable[[list[Message], list[tuple[Any, str]]], Awaitable[None]]


def retry_wait(failures: int, interval: float, max_backoff: float) -> float:
    """Seconds to wait after `failures` failures in a row (growing, with jitter)."""
    first = min(FIRST_RETRY, interval)
    wait: float = min(max_backoff, first * 2.0 ** (max(failures, 1) - 1))
    return wait * (1 + random.uniform(-JITTER, JITTER))


def websocket_url(base: str) -> str:
    scheme, rest = base.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{PATH}"


def events_of(frame: str | bytes, source: str) -> tuple[list[Message], list[tuple[Any, str]]]:
    """An eventbus frame (`{"TOPIC": content}`) as messages `{topic, event}`."""
    try:
        data = msgspec.json.decode(frame)
    except msgspec.DecodeError as exc:
        return [], [(frame, f"kismet eventbus: not JSON: {exc}")]
    if not isinstance(data, dict) or not data:
        return [], [(data, "kismet eventbus: expected an object {topic: event}")]
    return [
        Message(
            message_id=new_message_id(),
            timestamp="",
            payload={"topic": topic, "event": content},
            source=source,
            message_type="event",
        )
        for topic, content in data.items()
    ], []


class Eventbus:
    """One websocket to Kismet's eventbus, opened again with backoff when it drops.

    Authentication goes in the handshake's headers (the `KISMET` cookie or basic
    authentication), which Kismet accepts on websockets as on any endpoint.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: dict[str, str],
        topics: list[str],
        deliver: Deliver,
        name: str,
        timeout: float,
        max_backoff: float,
    ) -> None:
        self.url = websocket_url(base_url)
        self.headers = headers
        self.topics = topics
        self.deliver = deliver
        self.name = name
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.connected = False
        self.failures = 0  # connections in a row that failed or dropped
        self.events = 0  # events received since start

    async def run_forever(self) -> None:
        while True:
            try:
                await self.session()
                reason = "closed by Kismet"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (refused, dropped or a failed ingest: reconnect)
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            finally:
                self.connected = False
            self.failures += 1
            wait = retry_wait(self.failures, self.max_backoff, self.max_backoff)
            logger.warning("kismet eventbus down", input=self.name, reason=reason, retry_in=round(wait, 2))
            await asyncio.sleep(wait)

    async def session(self) -> None:
        """Connect, subscribe to every topic, deliver events until the socket closes."""
        async with connect(
            self.url,
            additional_headers=self.headers,
            open_timeout=self.timeout,
            max_size=2**24,
            user_agent_header="wireway",
        ) as ws:
            for topic in self.topics:
                await ws.send(msgspec.json.encode({"SUBSCRIBE": topic}).decode())
            self.connected = True
            if self.failures:
                logger.info("kismet eventbus up again", input=self.name, after_failures=self.failures)
            self.failures = 0
            async for frame in ws:
                messages, errors = events_of(frame, self.name)
                self.events += len(messages)
                await self.deliver(messages, errors)
