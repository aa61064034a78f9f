"""The `http_client` output: send each message, or each batch, to a URL."""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec

from wireway import formats
from wireway.connectors.base import Output
from wireway.connectors.http_client.config import HttpClientOutputConfig
from wireway.connectors.http_client.headers import fill, retry_after
from wireway.connectors.signing import (
    GITHUB_DELIVERY,
    GITHUB_SIGNATURE,
    MESSAGE_ID,
    WIREWAY_SIGNATURE,
    secrets_of,
    sign,
)
from wireway.envelope import Message
from wireway.errors import NotConnected, PermanentError, RetryableError
from wireway.registry import register_output

RETRY_STATUSES = {408, 429}
WAIT_STATUSES = {429, 503}  # answers whose Retry-After is honoured
MESSAGE_ID_HEADER = MESSAGE_ID
ANSWERED_LIMIT = 100_000  # confirmed ids of retried batches remembered at most


class TemplateError(Exception):
    """A header template cannot be filled from a message."""


@register_output("http_client", config=HttpClientOutputConfig)
class HttpClientOutput(Output):
    """Deliver to an HTTP endpoint; 2xx confirms."""

    client: httpx.AsyncClient
    config: HttpClientOutputConfig

    async def open(self) -> None:
        config = self.config
        static = {k: v for k, v in config.headers.items() if k not in config.templated()}
        self.client = httpx.AsyncClient(timeout=config.timeout, headers=static, trust_env=False)
        self.templates = config.templated()
        self.jsonl = self.iface.format == "jsonl" and config.batch is True
        self.limit = asyncio.Semaphore(config.concurrency)
        # ids of messages confirmed while their batch is retried for others (kept only until
        # the batch is done; a batch is at most the output's batch size)
        self.answered: set[str] = set()
        signing = config.hmac
        self.secret: bytes | None = None
        self.signature_header = WIREWAY_SIGNATURE
        if signing is not None:
            found = secrets_of([signing.secret], signing.secret_file, self.pattern.base_dir)
            self.secret = found[0] if found else None
            default = GITHUB_SIGNATURE if signing.style == "github" else WIREWAY_SIGNATURE
            self.signature_header = signing.signature_header or default

    async def close(self) -> None:
        await self.client.aclose()

    def headers(self, body: bytes, content_type: str, message_id: str | None) -> dict[str, str]:
        headers = {"content-type": content_type}
        if message_id is not None:
            headers[MESSAGE_ID_HEADER] = message_id
        signing = self.config.hmac
        if self.secret is None or signing is None:
            return headers
        if signing.style == "github":
            headers[self.signature_header] = sign(self.secret, body)
            if message_id is not None:
                headers[GITHUB_DELIVERY] = message_id
            return headers
        timestamp = str(int(time.time()))
        signed_over = timestamp if signing.style == "generic" else None
        headers[self.signature_header] = sign(self.secret, body, signed_over)
        headers[signing.timestamp_header] = timestamp
        return headers

    def classify(self, response: httpx.Response) -> str | None:
        """None for a confirmation, else the error; raises RetryableError when worth
        retrying (after a 429 or 503, carrying the answer's Retry-After)."""
        status = response.status_code
        if 200 <= status < 300:
            return None
        said = response.text[:200].strip()
        text = f"HTTP {status}: {said}" if said else f"HTTP {status}"
        wait = None
        if status in WAIT_STATUSES:
            wait = retry_after(response.headers.get("retry-after"), time.time())
            if wait is not None:
                wait = min(wait, self.config.retry_after_max)
                text += f" (Retry-After {wait:g}s)"
        if status >= 500 or status in RETRY_STATUSES:
            raise RetryableError(text, retry_after=wait)
        return text

    async def send(
        self, body: bytes, content_type: str, message_id: str | None, extra: dict[str, str]
    ) -> httpx.Response:
        headers = self.headers(body, content_type, message_id)
        headers.update(extra)
        try:
            async with self.limit:
                return await self.client.request(
                    self.config.method, self.config.address, content=body, headers=headers
                )
        except httpx.TimeoutException as exc:
            raise RetryableError(f"timeout after {self.config.timeout}s") from exc
        except httpx.ConnectError as exc:  # nothing was sent: the peer is away
            raise NotConnected(f"cannot connect to {self.config.address}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from exc

    def filled(self, msg: Message) -> dict[str, str]:
        """The templated headers for one message (TemplateError when it cannot fill them)."""
        if not self.templates:
            return {}
        try:
            return fill(self.templates, msgspec.to_builtins(msg))
        except KeyError as exc:
            raise TemplateError(f"header template: the message has no {exc.args[0]}") from exc
        except ValueError as exc:
            raise TemplateError(f"header template: {exc}") from exc

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        if self.config.batch:
            await self.write_batch(batch)
            return None
        return await self.write_each(batch)

    async def write_batch(self, batch: list[Message]) -> None:
        payload_only = self.config.payload_only
        if self.jsonl:
            body, ctype = formats.encode_lines(batch, payload_only), "application/x-ndjson"
        else:
            body, ctype = formats.encode_array(batch, payload_only), "application/json"
        try:
            extra = self.filled(batch[0])
        except TemplateError as exc:
            raise PermanentError(str(exc)) from exc
        reason = self.classify(await self.send(body, ctype, None, extra))
        if reason:
            raise PermanentError(reason)

    async def write_each(self, batch: list[Message]) -> dict[int, str] | None:
        # One request per message, concurrently; a retryable failure retries the batch,
        # and then the messages already confirmed are not sent again
        payload_only = self.config.payload_only
        answered = self.answered
        refused: dict[int, str] = {}
        todo: list[int] = []
        extras: list[dict[str, str]] = []
        for i, msg in enumerate(batch):
            if msg.message_id in answered:
                continue
            try:
                extras.append(self.filled(msg))
            except TemplateError as exc:
                refused[i] = str(exc)
                continue
            todo.append(i)
        responses = await asyncio.gather(
            *(
                self.send(
                    formats.encode_one(batch[i], payload_only), "application/json", batch[i].message_id, extra
                )
                for i, extra in zip(todo, extras, strict=True)
            ),
            return_exceptions=True,
        )
        retry: BaseException | None = None
        for i, resp in zip(todo, responses, strict=True):
            if isinstance(resp, BaseException):
                retry = retry or resp
                continue
            try:
                why = self.classify(resp)
            except RetryableError as exc:
                # the longest Retry-After any answer asked for holds the whole batch back
                if retry is None or (exc.retry_after or 0) > (getattr(retry, "retry_after", None) or 0):
                    retry = exc
                continue
            if why:
                refused[i] = why
            else:
                answered.add(batch[i].message_id)
        if retry is not None:
            if len(answered) > ANSWERED_LIMIT:  # batches given up on left theirs behind
                answered.clear()
            raise retry
        for msg in batch:  # the batch is done: its ids need not be remembered any longer
            answered.discard(msg.message_id)
        return refused or None
