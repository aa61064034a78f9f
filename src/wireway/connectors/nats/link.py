"""What the nats input and output share: a connection that follows its state, streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from wireway.connectors.nats.config import NatsConnection
from wireway.observability import logging as log

logger = log.get("nats")

# what a lost or refused connection raises at nats-py's edge
NATS_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    nats.js.errors.Error,
    ConnectionError,
    OSError,
    TimeoutError,
)


MSG_ID = "Nats-Msg-Id"  # JetStream drops a message whose id it has seen within its window


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Link:
    """One nats-py client: connects in the background until the server answers, then
    nats-py reconnects by itself; `up` follows the connection."""

    def __init__(
        self,
        config: NatsConnection,
        name: str,
        on_up: Callable[[], None] = lambda: None,
        on_down: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.name = name
        self.on_up = on_up
        self.on_down = on_down
        self.client: Client | None = None
        self.up = False
        self.connected = asyncio.Event()  # the first connection is made
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.connect_loop(), name=f"wireway[{self.name}].connect")

    async def connect_loop(self) -> None:
        cfg = self.config
        while True:
            try:
                self.client = await nats.connect(
                    cfg.servers,
                    name=f"wireway {self.name}",
                    connect_timeout=max(1, round(cfg.connect_timeout)),
                    reconnect_time_wait=cfg.reconnect_wait,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    disconnected_cb=self._down,
                    reconnected_cb=self._up,
                    error_cb=self._error,
                )
            except NATS_ERRORS as exc:
                logger.warning("nats connect failed; retrying", component=self.name, error=describe(exc))
                await asyncio.sleep(cfg.reconnect_wait)
                continue
            await self._up()
            self.connected.set()
            return

    async def _up(self) -> None:
        if not self.up:
            self.up = True
            self.on_up()

    async def _down(self) -> None:
        if self.up:
            self.up = False
            self.on_down()

    async def _error(self, exc: Exception) -> None:
        logger.warning("nats error", component=self.name, error=describe(exc))

    async def wait_connected(self) -> bool:
        """True once connected (within `connect_timeout`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.connect_timeout):
                await self.connected.wait()
        return self.connected.is_set()

    def jetstream(self) -> JetStreamContext:
        assert self.client is not None
        return self.client.jetstream(timeout=self.config.connect_timeout)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(*NATS_ERRORS):
                await client.flush(timeout=2)
            with contextlib.suppress(*NATS_ERRORS):
                await client.close()
        await self._down()


async def ensure_stream(js: JetStreamContext, config: NatsConnection, subjects: list[str]) -> None:
    """Create the stream when it is missing (file storage)."""
    assert config.stream is not None
    try:
        await js.stream_info(config.stream)
        return
    except nats.js.errors.NotFoundError:
        pass
    await js.add_stream(
        StreamConfig(
            name=config.stream,
            subjects=config.stream_subjects or subjects,
            storage=StorageType.FILE,
            duplicate_window=config.duplicate_window,
        )
    )
