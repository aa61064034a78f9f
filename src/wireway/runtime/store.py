"""What the runtime asks of a buffer: the `Store` contract and the values it passes.

A store keeps one outbox per output and the dead-letter queue. Two stores serve it:
`outbox.SqliteStore` (`buffer: durable`, the file `<data_dir>/buffer.db`) and
`memory.MemoryStore` (`buffer: memory`). `dlq.DlqAdmin` reads and changes the dead
letters of a durable buffer from another process (the CLI).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wireway.envelope import Message
from wireway.errors import WirewayError


class StoreError(WirewayError):
    """The store cannot do what was asked (closed, newer schema, not a wireway file)."""


class DatabaseNotFound(StoreError, FileNotFoundError):
    """There is no wireway database at the given path."""


@dataclass(slots=True)
class Item:
    """One message waiting in one output's outbox."""

    id: int
    queue: str
    message: Message | None  # None while it waits in the file alone (see Store.load)
    attempts: int = 0
    arrived: float = 0.0  # when ingest took it (time.time()), for the latency histogram


OnQueued = Callable[[list["Item"]], None]


@dataclass(slots=True)
class DeadLetter:
    """A message that could not be delivered (or was rejected before routing)."""

    message: Message
    pattern: str
    queue: str | None
    reason: str
    attempts: int
    failed_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.failed_at:
            self.failed_at = time.time()


class Store(ABC):
    """What the runtime needs from a buffer: an outbox, a DLQ and redrive requests."""

    durable: bool = False
    healthy: bool = True
    commits: int = 0

    @abstractmethod
    async def open(self) -> None: ...
    @abstractmethod
    async def close(self) -> None: ...
    @abstractmethod
    def pending(self) -> list[Item]: ...
    @abstractmethod
    async def enqueue(
        self,
        entries: list[tuple[str, Message]],
        on_queued: OnQueued | None = None,
        positions: dict[str, bytes] | None = None,
    ) -> list[Item]:
        """Store the messages; returns once they are durable. `on_queued`, if given, gets
        the items as soon as they have ids, while the commit is still under way.
        `positions` (an input's read position by key) are kept with the messages, in
        the same commit: after a crash an input resumes exactly after what is stored."""

    def position(self, key: str) -> bytes | None:
        """The read position last stored under `key` (None: never, or not kept)."""
        return None

    @abstractmethod
    async def ack(self, ids: list[int]) -> None: ...
    @abstractmethod
    async def dead_letter(self, letters: list[DeadLetter], ids: Sequence[int] = ()) -> None: ...
    @abstractmethod
    async def take_redrives(self) -> list[DeadLetter]: ...
    @abstractmethod
    def dlq_depth(self, pattern: str | None = None) -> int: ...

    async def load(self, items: list[Item]) -> None:
        """Read back the messages of items that were let go of while they waited."""
        if any(it.message is None for it in items):
            raise StoreError("this store keeps every message in memory")
