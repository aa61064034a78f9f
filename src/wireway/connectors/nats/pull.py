"""A JetStream pull consumer that keeps messages flowing: pull requests on one inbox
keep up to `window` messages requested or held, so the next ones arrive while a batch
is being stored (nats-py's `fetch` asks for one batch and waits for it)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

EXPIRES = 5.0  # seconds a pull request waits on the server for messages
HEARTBEAT = 1.0  # seconds between the server's idle heartbeats on a waiting request


class Puller:
    """Pull requests for a durable consumer; each message goes to `deliver`."""

    def __init__(
        self, client: Client, stream: str, durable: str, window: int, deliver: Callable[[Msg], None]
    ) -> None:
        self.client = client
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.window = window
        self.deliver = deliver
        self.inbox = client.new_inbox()
        self.outstanding = 0  # requested, not yet delivered nor expired
        self.heard = time.monotonic()  # the last message or status on the inbox
        self.sub: Any = None

    async def start(self) -> None:
        self.sub = await self.client.subscribe(self.inbox, cb=self.received, pending_msgs_limit=-1)

    async def stop(self) -> None:
        if self.sub is not None:
            await self.sub.unsubscribe()
            self.sub = None

    async def received(self, msg: Msg) -> None:
        self.heard = time.monotonic()
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self.outstanding = max(0, self.outstanding - 1)
            self.deliver(msg)
            return
        if status in ("408", "409", "404"):
            # a request expired or was refused: what it had not delivered is not coming
            assert msg.headers is not None
            left = msg.headers.get("Nats-Pending-Messages")
            self.outstanding = max(0, self.outstanding - int(left)) if left else 0
        # 100: an idle heartbeat, the request is still waiting

    async def request(self, held: int) -> None:
        """Ask for more once less than half the window is requested or held (`held`:
        received and not yet acknowledged)."""
        if self.outstanding and time.monotonic() - self.heard > EXPIRES + 2 * HEARTBEAT:
            # silence longer than a request lives (a reconnect lost it): ask again
            self.outstanding = 0
        want = self.window - held - self.outstanding
        if want < max(1, self.window // 2):
            return
        body = {
            "batch": want,
            "expires": int(EXPIRES * 1e9),
            "idle_heartbeat": int(HEARTBEAT * 1e9),
        }
        await self.client.publish(self.subject, json.dumps(body).encode(), reply=self.inbox)
        self.outstanding += want
        self.heard = time.monotonic()
