"""The in-memory view of one output's outbox: priority lanes over stored items."""

from __future__ import annotations

import asyncio
from collections import deque

from wireway.envelope import PRIORITY_RANK
from wireway.runtime.store import Item


class OutputQueue:
    """Items waiting for one output, high priority first, bounded by `capacity`."""

    def __init__(self, name: str, capacity: int, keep: int | None = None) -> None:
        self.name = name
        self.capacity = capacity
        # items further back than `keep` let go of their message (durable queues only:
        # it stays in the store, and delivery reads it back)
        self.keep = keep
        self.lanes: tuple[deque[Item], ...] = (deque(), deque(), deque())
        self.waiting = 0  # items in the lanes (kept, not summed: asked per message)
        self.in_flight = 0
        self.reserved = 0  # room promised to ingest calls still writing their items
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()

    def __len__(self) -> int:
        return self.waiting

    @property
    def depth(self) -> int:
        """Items not yet confirmed: waiting plus in flight."""
        return len(self) + self.in_flight

    def free(self, limit: int | None = None) -> int:
        """Places left below `limit` (default: the whole capacity)."""
        return (self.capacity if limit is None else limit) - self.depth - self.reserved

    @property
    def soft_capacity(self) -> int:
        """Where an input that can hold its sender back (a broker, a TCP peer) waits:
        before the queue outgrows what it keeps in memory. Only inputs that would have
        to refuse (HTTP's 503) fill the rest of `capacity`."""
        return min(self.capacity, self.keep) if self.keep is not None else self.capacity

    def fits_in_memory(self, count: int) -> bool:
        """Whether `count` more items would all keep their message in memory."""
        return self.keep is None or len(self) + count <= self.keep

    def reserve(self, count: int) -> None:
        """Hold room for `count` items an ingest call is about to store (so two calls
        in flight cannot both take the last free places)."""
        self.reserved += count
        if self.free() <= 0:
            self.room.clear()

    def unreserve(self, count: int) -> None:
        self.reserved -= count
        if self.free() > 0:
            self.room.set()

    def put(self, items: list[Item], *, front: bool = False) -> None:
        keep = self.keep
        for item in reversed(items) if front else items:
            message = item.message
            rank = PRIORITY_RANK.get(message.metadata.priority, 1) if message is not None else 1
            lane = self.lanes[rank]
            if front:
                lane.appendleft(item)
            else:
                if keep is not None and len(lane) >= keep:
                    item.message = None
                lane.append(item)
        self.waiting += len(items)
        if items:
            self.ready.set()
        if self.free() <= 0:
            self.room.clear()

    def take(self, n: int) -> list[Item]:
        """Up to n items, highest priority first; they count as in flight until `done`."""
        out: list[Item] = []
        for lane in self.lanes:
            want = n - len(out)
            if want <= 0:
                break
            if len(lane) <= want:
                out.extend(lane)
                lane.clear()
            else:
                out.extend(lane.popleft() for _ in range(want))
        self.waiting -= len(out)
        self.in_flight += len(out)
        if not self.waiting:
            self.ready.clear()
        return out

    def done(self, count: int) -> None:
        """`count` in-flight items left the queue for good (delivered or dead-lettered)."""
        self.in_flight -= count
        if self.free() > 0:
            self.room.set()

    def retry(self, items: list[Item]) -> None:
        """In-flight items go back to the front of their lanes."""
        self.in_flight -= len(items)
        self.put(items, front=True)
