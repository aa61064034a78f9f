"""The `http_poll` input: poll a URL at an interval, one message per item, the cursor
of each response stored with its messages and put into the next request."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from wireway.config.model import Interface, Pattern
from wireway.connectors.base import Input, InputContext
from wireway.connectors.durations import seconds
from wireway.connectors.http_poll.config import (
    PLACEHOLDER,
    HttpPollInputConfig,
    expression,
)
from wireway.envelope import Message, stable_id
from wireway.expr import Expr
from wireway.observability import logging as log
from wireway.observability.metrics import INPUT_ERRORS
from wireway.registry import register_input

logger = log.get("http_poll")

FIRST_RETRY = 1.0  # longest wait before the first retry (then doubling up to max_backoff)
JITTER = 0.1  # +-10% on each retry wait, so pollers of one server do not retry in step


def _max(values: list[Any]) -> Any:
    return max(values) if values else None  # an empty page: null keeps the cursor


def _min(values: list[Any]) -> Any:
    return min(values) if values else None


# functions CEL lacks that a cursor expression wants (`items.map(i, i.ts).max()`)
FUNCTIONS = {"max": _max, "min": _min}


def evaluate(expr: Expr, context: dict[str, Any]) -> Any:
    """Evaluate with the extra list functions available when the expression calls them."""
    return expr.evaluate_with(context, FUNCTIONS)


class PollError(Exception):
    """A poll that brought nothing usable: the reason is logged and it is retried."""


def cursor_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def fill(value: Any, cursor: Any) -> Any:
    """A body with `{cursor}` replaced: a string that is just the placeholder takes the
    value itself, one that holds it among other text takes its text."""
    if isinstance(value, str):
        return cursor if value == PLACEHOLDER else value.replace(PLACEHOLDER, cursor_text(cursor))
    if isinstance(value, dict):
        return {k: fill(v, cursor) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, cursor) for v in value]
    return value


@register_input("http_poll", config=HttpPollInputConfig)
class HttpPollInput(Input):
    """Poll an HTTP endpoint; the cursor is committed with the messages it covers."""

    keeps_position = True
    formats = None  # the response body is decoded with any format
    config: HttpPollInputConfig

    def __init__(self, config: HttpPollInputConfig, iface: Interface, pattern: Pattern) -> None:
        super().__init__(config, iface, pattern)
        self.interval = seconds(config.interval, "interval")
        self.max_backoff = seconds(config.max_backoff, "max_backoff")
        self.stale_after = seconds(config.stale_after, "stale_after") if config.stale_after else None
        self.items = expression(config.items, "items") if config.items else None
        self.next_cursor = expression(config.cursor, "cursor") if config.cursor else None
        self.id = expression(config.id, "id") if config.id else None
        self.cursor: Any = config.initial_cursor
        self.failures = 0  # polls in a row that failed
        self.errors = 0  # polls that failed since start
        self.last_new = 0.0  # loop time of the last new item (or of the start)
        self.stale = False
        self.task: asyncio.Task[None] | None = None

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        stored = ctx.position(self.name)
        if stored is not None:
            try:
                self.cursor = msgspec.json.decode(stored)
            except msgspec.DecodeError:
                logger.warning("stored cursor unreadable, starting from initial_cursor", input=self.name)
        cfg = self.config
        auth: httpx.Auth | None = None
        if cfg.basic_auth is not None:
            auth = httpx.BasicAuth(cfg.basic_auth.username, cfg.basic_auth.password)
        headers = dict(cfg.headers)
        if cfg.bearer_token is not None:
            headers["authorization"] = f"Bearer {cfg.bearer_token}"
        self.client = httpx.AsyncClient(
            timeout=seconds(cfg.timeout, "timeout"), headers=headers, auth=auth, trust_env=False
        )
        self.codec = self.iface.new_codec()
        self.last_new = asyncio.get_running_loop().time()
        self.task = asyncio.create_task(self.run(), name=f"wireway[{self.name}].poll")
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            await self.client.aclose()

    def health(self) -> dict[str, str]:
        if self.task is None:
            return {}
        return {self.name: "down" if self.failures or self.is_stale() else "up"}

    def is_stale(self) -> bool:
        if self.stale_after is None:
            return False
        return asyncio.get_running_loop().time() - self.last_new > self.stale_after

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self.poll()
            except Exception as exc:  # noqa: BLE001  (a refused poll or a failed ingest: retried)
                self.failures += 1
                self.errors += 1
                INPUT_ERRORS.labels(self.pattern.name, self.name).inc()
                self.state = "retrying"
                first = min(FIRST_RETRY, self.interval)
                wait = min(self.max_backoff, first * 2 ** (self.failures - 1))
                wait *= 1 + random.uniform(-JITTER, JITTER)
                logger.warning(
                    "poll failed", input=self.name, error=str(exc), failures=self.failures, retry_in=wait
                )
                await asyncio.sleep(wait)
                continue
            if self.failures:
                logger.info("poll works again", input=self.name, after_failures=self.failures)
            self.failures = 0
            self.watch_staleness()
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - began)))

    def watch_staleness(self) -> None:
        stale = self.is_stale()
        if stale != self.stale:
            self.stale = stale
            if stale:
                logger.warning("no new data", input=self.name, stale_after=self.stale_after)
            else:
                logger.info("new data again", input=self.name)
        self.state = "stale" if stale else "running"

    async def poll(self) -> None:
        """One request; its items are ingested with the cursor it gives."""
        response = await self.request()
        records = self.codec.decode(response.content, self.config.url) if response.content else []
        values = [r.value for r in records if r.error is None]
        errors = [(r.value, r.error) for r in records if r.error is not None]
        if errors and not values:
            raise PollError(errors[0][1])
        body = values[0] if len(values) == 1 and not self.codec.lines else values
        if not response.content:
            body = None
        context = {
            "response": {"status": response.status_code, "headers": dict(response.headers), "body": body},
            "cursor": self.cursor,
        }
        items = self.take_items(context, body)
        cursor = self.cursor
        if self.next_cursor is not None:
            try:
                value = evaluate(self.next_cursor, context)
            except Exception:  # noqa: BLE001  (an empty page: keep the cursor)
                value = None
            if value is not None:
                cursor = value
        if not items and not errors and cursor == self.cursor:
            return
        position = (self.name, msgspec.json.encode(cursor)) if cursor is not None else None
        await self.ctx.ingest(
            [self.message(item) for item in items], source=self.name, errors=errors, position=position
        )
        self.cursor = cursor
        if items:
            self.last_new = asyncio.get_running_loop().time()

    async def request(self) -> httpx.Response:
        cfg = self.config
        url = httpx.URL(cfg.url.replace(PLACEHOLDER, quote(cursor_text(self.cursor), safe="")))
        if cfg.cursor_param and self.cursor is not None:
            # added to the URL's own query (`params=` would replace it)
            url = url.copy_merge_params({cfg.cursor_param: cursor_text(self.cursor)})
        content: bytes | None = None
        headers: dict[str, str] = {}
        if cfg.body is not None:
            body = fill(cfg.body, self.cursor)
            if isinstance(body, str):
                content = body.encode()
            else:
                content = msgspec.json.encode(body)
                headers["content-type"] = "application/json"
        try:
            response = await self.client.request(cfg.method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise PollError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        if not response.is_success:
            raise PollError(f"HTTP {response.status_code}: {response.text[:200]}")
        return response

    def take_items(self, context: dict[str, Any], body: Any) -> list[Any]:
        if self.items is None:
            if body is None:
                return []
            return body if isinstance(body, list) else [body]
        try:
            found = evaluate(self.items, context)
        except Exception as exc:
            raise PollError(f"items: {exc}") from exc
        if found is None:
            return []
        if not isinstance(found, list):
            raise PollError(f"items: expected an array, got {type(found).__name__}")
        return found

    def message(self, item: Any) -> Any:
        """The item as it is, or with `id`, a message whose id is derived from it."""
        if self.id is None:
            return item
        try:
            key = evaluate(self.id, {"item": item})
        except Exception:  # noqa: BLE001  (no id to derive: a fresh one)
            return item
        return Message(
            message_id=stable_id("http_poll", self.name, cursor_text(key)),
            timestamp="",
            payload=item,
            source=self.name,
        )
