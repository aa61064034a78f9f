"""The `nats` output: core publish (delivered once flushed) or JetStream publish
(delivered once the stream's PubAck came), with `Nats-Msg-Id` for deduplication."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from wireway.connectors.base import Output
from wireway.connectors.nats.config import NatsOutputConfig
from wireway.connectors.nats.link import MSG_ID, NATS_ERRORS, Link, describe, ensure_stream
from wireway.connectors.templates import fill
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.observability import logging as log
from wireway.registry import register_output

logger = log.get("nats")


@register_output("nats", config=NatsOutputConfig)
class NatsOutput(Output):
    """Publish to a subject, on core NATS or JetStream."""

    config: NatsOutputConfig
    formats = None

    async def open(self) -> None:
        self.codec = self.iface.new_codec()
        self.templated = "{" in self.config.subject
        self.stream_ready = not self.config.create
        self.link = Link(self.config, self.name)
        self.link.start()
        # a reachable server is connected on return; else writes fail (and are retried)
        # until the background connect succeeds
        await self.link.wait_connected()

    async def close(self) -> None:
        await self.link.close()

    def health(self) -> dict[str, str]:
        link = getattr(self, "link", None)
        return {"nats_out": "up" if link is not None and link.up else "down"}

    def encode(self, batch: list[Message]) -> tuple[list[tuple[int, str, bytes]], dict[int, str]]:
        """(index, subject, bytes) of each message it can send, and the refused ones."""
        out: list[tuple[int, str, bytes]] = []
        refused: dict[int, str] = {}
        subject = self.config.subject
        for i, msg in enumerate(batch):
            try:
                if self.templated:
                    subject = fill(self.config.subject, msgspec.to_builtins(msg))
                out.append((i, subject, self.codec.encode(msg, self.config.payload_only)))
            except (KeyError, TypeError) as exc:
                refused[i] = f"subject template: missing field {exc}"
            except ValueError as exc:  # the format cannot carry this message
                refused[i] = str(exc)
        return out, refused

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        client = self.link.client
        if client is None or not self.link.up:
            raise RetryableError("nats: not connected")
        sends, refused = self.encode(batch)
        try:
            if self.config.jetstream:
                await self.publish_jetstream(batch, sends)
            else:
                for _, subject, data in sends:
                    await client.publish(subject, data)
                await client.flush(timeout=max(1, round(self.config.timeout)))
        except NATS_ERRORS as exc:
            raise RetryableError(f"nats: {describe(exc)}") from exc
        return refused or None

    async def publish_jetstream(self, batch: list[Message], sends: list[tuple[int, str, bytes]]) -> None:
        """Publish all, then wait for every PubAck (a retry of the batch stores no copy:
        the stream drops a `Nats-Msg-Id` it has seen)."""
        js = self.link.jetstream()
        if not self.stream_ready:
            await ensure_stream(js, self.config, [self.config.subject])
            self.stream_ready = True
        futures: list[asyncio.Future[Any]] = []
        try:
            for i, subject, data in sends:
                headers = {MSG_ID: batch[i].message_id}
                futures.append(await js.publish_async(subject, data, headers=headers))
            done = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), self.config.timeout
            )
        except TimeoutError as exc:
            raise RetryableError(f"nats: no PubAck within {self.config.timeout:g}s") from exc
        finally:
            for future in futures:
                future.cancel()
        failures = [r for r in done if isinstance(r, BaseException)]
        if failures:
            raise RetryableError(
                f"nats: {len(failures)} of {len(sends)} not stored by the stream: {describe(failures[0])}"
            )
