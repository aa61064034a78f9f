"""The `redis` input in streams mode: a consumer of a consumer group.

At each (re)connect it reads its own pending entries first (read, not acknowledged:
a crash or a lost connection came between), then takes over entries other consumers
left pending for longer than `claim_idle`, then reads new entries. An entry is
acknowledged (XACK) once its messages are stored; one delivered more than
`max_deliver` times (a message that keeps failing) goes to the dead-letter queue
and is acknowledged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.exceptions

from wireway.connectors.redis.readers import BLOCK, Batch, Reader

Entry = tuple[bytes, dict[bytes, bytes]]


class StreamReader(Reader):
    """XREADGROUP, XAUTOCLAIM and XACK on one stream."""

    async def open(self, client: Any) -> None:
        await super().open(client)
        cfg = self.config
        self.key = cfg.key or ""
        self.group = cfg.group or "wireway"
        self.consumer = cfg.consumer or f"wireway-{self.owner.pattern.name}"
        try:
            await client.xgroup_create(self.key, self.group, cfg.start_id, mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists already: keep its position
                raise
        if self.unacked:
            await client.xack(self.key, self.group, *self.unacked)
            self.unacked = []
        self.own_from: bytes | None = b"0"  # None once this consumer's pending entries are read
        self.claim_from = b"0-0"
        self.next_claim = 0.0  # loop time of the next XAUTOCLAIM pass (now: at once)

    async def read(self) -> Batch | None:
        size = self.config.batch_size
        if self.own_from is not None:
            own = {self.key: self.own_from}
            got = await self.client.xreadgroup(self.group, self.consumer, own, count=size)
            entries: list[Entry] = got[0][1] if got else []
            if entries:
                self.own_from = entries[-1][0]
                return await self._redelivered(entries)
            self.own_from = None
        idle = self.config.claim_idle
        now = asyncio.get_running_loop().time()
        if idle is not None and now >= self.next_claim:
            start, entries, *_ = await self.client.xautoclaim(
                self.key, self.group, self.consumer, int(idle * 1000), self.claim_from, count=size
            )
            self.claim_from = start
            if start in (b"0-0", "0-0"):  # a whole pass over the pending entries is done
                self.claim_from = b"0-0"
                self.next_claim = now + idle
            if entries:
                return await self._redelivered(entries)
        got = await self.client.xreadgroup(
            self.group, self.consumer, {self.key: ">"}, count=size, block=int(BLOCK * 1000)
        )
        entries = got[0][1] if got else []
        return self._batch(entries, {}) if entries else None

    async def _redelivered(self, entries: list[Entry]) -> Batch:
        """Entries read before: how often each was delivered decides whether it goes on
        or to the dead-letter queue."""
        limit = self.config.max_deliver
        counts: dict[bytes, int] = {}
        if limit is not None:
            pipe = self.client.pipeline(transaction=False)
            for entry_id, _ in entries:  # one by one: other entries may lie between them
                pipe.xpending_range(self.key, self.group, min=entry_id, max=entry_id, count=1)
            for found in await pipe.execute():
                counts.update((p["message_id"], p["times_delivered"]) for p in found)
        return self._batch(entries, counts)

    def _batch(self, entries: list[Entry], counts: dict[bytes, int]) -> Batch:
        cfg = self.config
        limit = cfg.max_deliver
        wanted = cfg.field.encode()
        batch = Batch()
        for entry_id, fields in entries:
            batch.acks.append(entry_id)
            if not fields:
                continue  # deleted (trimmed) while pending: nothing left to deliver
            where = f"stream {self.key} entry {entry_id.decode()}"
            if limit is not None and counts.get(entry_id, 0) > limit:
                reason = f"{where}: delivered {counts[entry_id]} times (max_deliver {limit})"
                batch.errors.append((_text(fields), reason))
            elif cfg.whole_entry:
                self.owner.decode_value(_text(fields), (self.key, entry_id.decode()), batch)
            elif wanted not in fields:
                batch.errors.append((_text(fields), f"{where}: no `{cfg.field}` field"))
            else:
                self.owner.decode(fields[wanted], where, batch, (self.key, entry_id.decode()))
        return batch

    async def ack(self, batch: Batch) -> None:
        if not batch.acks:
            return
        try:
            await self.client.xack(self.key, self.group, *batch.acks)
        except BaseException:
            self.unacked = batch.acks
            raise


def _text(fields: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in fields.items()}
