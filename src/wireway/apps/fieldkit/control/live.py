"""The `/webhook` WebSocket: channels a client subscribes to (`status`, `devices`,
`alerts`), and its events sent at most `PER_SECOND` a second (the rest wait in a
bounded queue; the oldest is dropped when it is full)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from wireway.apps.fieldkit.control.scripts import now_iso

CHANNELS = ("status", "devices", "alerts")
PER_SECOND = 10
QUEUED = 1000
_encode = msgspec.json.Encoder().encode


def event(name: str, data: Any) -> bytes:
    return _encode({"event": name, "data": data, "timestamp": now_iso()})


class Client:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.channels: set[str] = set()
        self.queue: deque[bytes] = deque(maxlen=QUEUED)
        self.ready = asyncio.Event()
        self.sent: deque[float] = deque(maxlen=PER_SECOND)  # when the last events went out

    def push(self, frame: bytes) -> None:
        self.queue.append(frame)  # a full queue forgets its oldest event
        self.ready.set()

    async def send_forever(self) -> None:
        while True:
            await self.ready.wait()
            while self.queue:
                if len(self.sent) == PER_SECOND:
                    wait = self.sent[0] + 1.0 - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                await self.ws.send_text(self.queue.popleft().decode())
                self.sent.append(time.monotonic())
            self.ready.clear()


class Hub:
    """The connected clients; `broadcast` reaches those subscribed to a channel."""

    def __init__(self) -> None:
        self.clients: set[Client] = set()

    def broadcast(self, channel: str, name: str, data: Any) -> None:
        if not any(channel in c.channels for c in self.clients):
            return
        frame = event(name, data)
        for client in list(self.clients):
            if channel in client.channels:
                client.push(frame)

    async def serve(self, ws: WebSocket, status: Any) -> None:
        """One client: `status(script or None)` answers requestStatus."""
        await ws.accept()
        client = Client(ws)
        self.clients.add(client)
        sender = asyncio.create_task(client.send_forever(), name="wireway[fieldkit-control].ws-send")
        client.push(event("statusUpdate", status(None)))
        try:
            while True:
                text = await ws.receive_text()
                self.handle(client, text, status)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.clients.discard(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    def handle(self, client: Client, text: str, status: Any) -> None:
        try:
            message = msgspec.json.decode(text)
        except msgspec.DecodeError:
            client.push(event("error", {"message": "expected a JSON object {event, data}"}))
            return
        if not isinstance(message, dict):
            client.push(event("error", {"message": "expected a JSON object {event, data}"}))
            return
        name, data = message.get("event"), message.get("data") or {}
        if not isinstance(data, dict):
            data = {}
        if name in ("subscribe", "unsubscribe"):
            asked = data.get("channels")
            wanted = [c for c in asked if c in CHANNELS] if isinstance(asked, list) else []
            if name == "subscribe":
                client.channels.update(wanted)
            else:
                client.channels.difference_update(wanted)
            client.push(event(name + "d", {"channels": sorted(client.channels), "available": list(CHANNELS)}))
        elif name == "requestStatus":
            script = data.get("script")
            try:
                answer = {"script": script, "status": status(script)}
            except Exception as exc:  # noqa: BLE001  (an unknown script: told, the socket stays)
                client.push(event("error", {"message": "Failed to get status", "error": str(exc)}))
                return
            client.push(event("statusUpdate", answer))
        else:
            client.push(event("error", {"message": f"unknown event {name!r}"}))
