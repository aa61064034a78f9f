"""The `http_client` output: POST each message, or each batch, to a URL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import httpx

from wireway import formats
from wireway.connectors.base import Output
from wireway.connectors.http_client.config import HttpClientOutputConfig
from wireway.envelope import Message
from wireway.errors import PermanentError, RetryableError
from wireway.registry import register_output

RETRY_STATUSES = {408, 429}
MESSAGE_ID_HEADER = "X-Wireway-Message-Id"
ANSWERED_LIMIT = 100_000  # confirmed ids of retried batches remembered at most


def signature(secret: bytes, body: bytes) -> str:
    """The signature header's value: `sha256=` and the HMAC-SHA256 of the body, in hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def classify(response: httpx.Response) -> str | None:
    """None for a confirmation, else the error; raises RetryableError when worth retrying."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    text = f"HTTP {status}: {response.text[:200]}"
    if status >= 500 or status in RETRY_STATUSES:
        raise RetryableError(text)
    return text


@register_output("http_client", config=HttpClientOutputConfig)
class HttpClientOutput(Output):
    """Deliver to an HTTP endpoint; 2xx confirms."""

    client: httpx.AsyncClient

    async def open(self) -> None:
        self.client = httpx.AsyncClient(
            timeout=self.config.timeout, headers=self.config.headers, trust_env=False
        )
        self.jsonl = self.iface.format == "jsonl"
        self.limit = asyncio.Semaphore(self.config.concurrency)
        # ids of messages confirmed while their batch is retried for others (kept only until
        # the batch is done; a batch is at most the output's batch size)
        self.answered: set[str] = set()
        signing = self.config.hmac
        self.secret = signing.secret.encode() if signing is not None and signing.secret else None

    async def close(self) -> None:
        await self.client.aclose()

    def headers(self, body: bytes, content_type: str, message_id: str | None) -> dict[str, str]:
        headers = {"content-type": content_type}
        if message_id is not None:
            headers[MESSAGE_ID_HEADER] = message_id
        if self.secret is not None:
            assert self.config.hmac is not None
            headers[self.config.hmac.signature_header] = signature(self.secret, body)
            headers[self.config.hmac.timestamp_header] = str(int(time.time()))
        return headers

    async def send(self, body: bytes, content_type: str, message_id: str | None = None) -> httpx.Response:
        try:
            async with self.limit:
                return await self.client.request(
                    self.config.method,
                    self.config.address,
                    content=body,
                    headers=self.headers(body, content_type, message_id),
                )
        except httpx.TimeoutException as exc:
            raise RetryableError(f"timeout after {self.config.timeout}s") from exc
        except httpx.HTTPError as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from exc

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        payload_only = self.config.payload_only
        if self.config.batch:
            if self.jsonl:
                body, ctype = formats.encode_lines(batch, payload_only), "application/x-ndjson"
            else:
                body, ctype = formats.encode_array(batch, payload_only), "application/json"
            reason = classify(await self.send(body, ctype))
            if reason:
                raise PermanentError(reason)
            return None
        # One request per message, concurrently; a retryable failure retries the batch,
        # and then the messages already confirmed are not sent again
        answered = self.answered
        todo = [i for i, msg in enumerate(batch) if msg.message_id not in answered]
        responses = await asyncio.gather(
            *(
                self.send(formats.encode_one(batch[i], payload_only), "application/json", batch[i].message_id)
                for i in todo
            ),
            return_exceptions=True,
        )
        refused: dict[int, str] = {}
        retry: BaseException | None = None
        for i, resp in zip(todo, responses, strict=True):
            if isinstance(resp, BaseException):
                retry = retry or resp
                continue
            try:
                why = classify(resp)
            except RetryableError as exc:
                retry = retry or exc
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
