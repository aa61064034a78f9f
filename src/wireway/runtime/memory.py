"""`buffer: memory`: the store for patterns that accept losing what waits at a crash.

It hands out ids and keeps nothing but its dead letters (in a list, for `/status` and
the DLQ depth); the output queues themselves hold the messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from wireway.envelope import Message
from wireway.runtime.store import DeadLetter, Item, OnQueued, Store


class MemoryStore(Store):
    """`buffer: memory`: nothing survives a restart; dead letters are kept in a list."""

    durable = False

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.commits = 0
        self._next_id = 1
        self._depth: Counter[str] = Counter()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def pending(self) -> list[Item]:
        return []

    async def enqueue(
        self,
        entries: list[tuple[str, Message]],
        on_queued: OnQueued | None = None,
        positions: dict[str, bytes] | None = None,
    ) -> list[Item]:
        """Positions are kept by the runner in the durable store, if the engine has one."""
        start = self._next_id
        self._next_id += len(entries)
        items = [Item(i, q, m) for i, (q, m) in enumerate(entries, start)]
        if on_queued is not None:
            on_queued(items)
        return items

    async def ack(self, ids: list[int]) -> None:
        return None

    async def dead_letter(self, letters: list[DeadLetter], ids: Sequence[int] = ()) -> None:
        self.letters.extend(letters)
        self._depth.update(d.pattern for d in letters)

    async def take_redrives(self) -> list[DeadLetter]:
        return []

    def dlq_depth(self, pattern: str | None = None) -> int:
        return len(self.letters) if pattern is None else self._depth[pattern]
