"""The `http_client` output: POST each message, or each batch, to a URL."""

from __future__ import annotations

import asyncio

import httpx

from wireway import formats
from wireway.connectors.base import Output
from wireway.connectors.http_client.config import HttpClientOutputConfig
from wireway.envelope import Message
from wireway.errors import PermanentError, RetryableError
from wireway.registry import register_output

RETRY_STATUSES = {408, 429}


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

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, body: bytes, content_type: str) -> httpx.Response:
        try:
            async with self.limit:
                return await self.client.request(
                    self.config.method,
                    self.config.address,
                    content=body,
                    headers={"content-type": content_type},
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
        # One request per message, concurrently; a retryable failure retries the batch.
        responses = await asyncio.gather(
            *(self.send(formats.encode_one(m, payload_only), "application/json") for m in batch),
            return_exceptions=True,
        )
        refused: dict[int, str] = {}
        retry: BaseException | None = None
        for i, resp in enumerate(responses):
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
        if retry is not None:
            raise retry
        return refused or None
