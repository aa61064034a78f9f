"""The `mavlink` input: pymavlink reads on a worker thread (it blocks) and hands the
messages to the event loop in batches; positions go to the engine's position board."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from typing import Any

from wireway.config.model import Interface, Pattern
from wireway.connectors.base import Input, InputContext
from wireway.connectors.durations import seconds
from wireway.connectors.mavlink.config import MavlinkInputConfig
from wireway.connectors.mavlink.messages import payload, position
from wireway.envelope import Message, new_message_id
from wireway.observability import logging as log
from wireway.observability.metrics import INPUT_ERRORS
from wireway.processors.positions import Positions
from wireway.registry import register_input

logger = log.get("mavlink")

FIRST_RETRY = 1.0  # seconds before opening a failed connection again (then doubling)
JITTER = 0.1
POLL = 0.25  # longest a blocking read waits, so the thread sees a stop soon


def mavutil() -> Any:
    """pymavlink's mavutil, speaking MAVLink 2 (which reads MAVLink 1 too)."""
    # pymavlink picks its wire version from the environment when first imported
    os.environ.setdefault("MAVLINK20", "1")
    from pymavlink import mavutil as module

    return module


@register_input("mavlink", config=MavlinkInputConfig)
class MavlinkInput(Input):
    """Read MAVLink on a worker thread; down while no heartbeat comes."""

    config: MavlinkInputConfig
    service_class = Positions

    def __init__(self, config: MavlinkInputConfig, iface: Interface, pattern: Pattern) -> None:
        super().__init__(config, iface, pattern)
        self.heartbeat_timeout = seconds(config.heartbeat_timeout, "heartbeat_timeout")
        self.max_backoff = seconds(config.max_backoff, "max_backoff")
        self.kinds = set(config.messages)
        self.positions: Positions | None = None
        self.last_heartbeat: float | None = None  # time.monotonic() of the last HEARTBEAT
        self.opened = False  # the worker's connection is open
        self.lock = threading.Lock()
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.dropped = 0
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.task: asyncio.Task[None] | None = None
        self.watchdog: asyncio.Task[None] | None = None

    def use_service(self, service: Any) -> None:
        assert isinstance(service, Positions)
        self.positions = service

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.module = mavutil()
        self.state = "waiting for heartbeat"
        self.task = asyncio.create_task(self.deliver(), name=f"wireway[{self.name}].deliver")
        self.watchdog = asyncio.create_task(self.watch(), name=f"wireway[{self.name}].watchdog")
        self.thread = threading.Thread(target=self.read, name=f"wireway[{self.name}].read", daemon=True)
        self.thread.start()

    async def stop(self) -> None:
        self.state = "stopped"
        self.stopping.set()
        if self.thread is not None:
            await asyncio.to_thread(self.thread.join, 5)
        for task in (self.task, self.watchdog):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.task = self.watchdog = None

    def heard(self) -> bool:
        last = self.last_heartbeat
        return last is not None and time.monotonic() - last <= self.heartbeat_timeout

    def health(self) -> dict[str, str]:
        if self.task is None:
            return {}
        return {self.name: "up" if self.heard() else "down"}

    async def watch(self) -> None:
        """The heartbeat watchdog: keeps the state shown in /status, logs a lost heartbeat."""
        every = min(1.0, self.heartbeat_timeout / 4)
        while True:
            heard = self.heard()
            if heard:
                state = "running"
            elif self.last_heartbeat is None:
                state = "waiting for heartbeat" if self.opened else "down"
            else:
                state = "no heartbeat"
            if state == "no heartbeat" and self.state == "running":
                logger.warning("no heartbeat", input=self.name, timeout=self.heartbeat_timeout)
            self.state = state
            await asyncio.sleep(every)

    # ---- the worker thread -------------------------------------------------------

    def read(self) -> None:
        """Open the connection, read until stopped; open it again after a failure."""
        failures = 0
        while not self.stopping.is_set():
            try:
                conn = self.module.mavlink_connection(
                    self.config.connection, baud=self.config.baud, dialect=self.config.dialect
                )
            except Exception as exc:  # noqa: BLE001  (pymavlink raises OSError, SerialException, ...)
                reason = f"cannot open {self.config.connection}: {exc}"
            else:
                self.opened = True
                logger.info("mavlink open", input=self.name, connection=self.config.connection)
                try:
                    self.receive(conn)
                    failures = 0
                    reason = ""
                except Exception as exc:  # noqa: BLE001  (a device unplugged, a socket error)
                    reason = f"{type(exc).__name__}: {exc}"
                finally:
                    self.opened = False
                    with contextlib.suppress(Exception):
                        conn.close()
            if self.stopping.is_set():
                return
            failures += 1
            INPUT_ERRORS.labels(self.pattern.name, self.name).inc()
            wait = min(self.max_backoff, FIRST_RETRY * 2 ** (failures - 1))
            wait *= 1 + random.uniform(-JITTER, JITTER)
            logger.warning("mavlink unavailable", input=self.name, reason=reason, retry_in=round(wait, 2))
            self.stopping.wait(wait)

    def receive(self, conn: Any) -> None:
        """Read messages until stopped; keep the chosen ones for the event loop."""
        system = self.config.system
        kinds = self.kinds
        while not self.stopping.is_set():
            msg = conn.recv_match(blocking=True, timeout=POLL)
            if msg is None:
                continue
            kind = msg.get_type()
            if kind == "BAD_DATA" or (system is not None and msg.get_srcSystem() != system):
                continue
            if kind == "HEARTBEAT" and msg.type != self.module.mavlink.MAV_TYPE_GCS:
                if self.last_heartbeat is None or not self.heard():
                    logger.info("heartbeat", input=self.name, system=msg.get_srcSystem())
                self.last_heartbeat = time.monotonic()
            if kind not in kinds:
                continue
            body = payload(kind, msg)
            with self.lock:
                if len(self.pending) >= self.config.max_pending:
                    self.dropped += 1
                    continue
                first = not self.pending
                self.pending.append((kind, body))
            if first:  # one wake-up per batch, not per message
                self.loop.call_soon_threadsafe(self.wake.set)

    # ---- the event loop ----------------------------------------------------------

    async def deliver(self) -> None:
        """Ingest what the thread collected, a batch at a time."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            with self.lock:
                batch, self.pending = self.pending, []
                dropped, self.dropped = self.dropped, 0
            if dropped:
                logger.warning("messages dropped: the engine is behind", input=self.name, dropped=dropped)
            if not batch:
                continue
            values: list[Message] = []
            for kind, body in batch:
                fix = position(kind, body)
                if fix is not None and self.positions is not None:
                    self.positions.publish(self.name, *fix)
                values.append(
                    Message(
                        message_id=new_message_id(),
                        timestamp="",
                        payload=body,
                        source=self.name,
                        message_type=kind.lower(),
                    )
                )
            try:
                await self.ctx.ingest(values, source=self.name)
            except Exception as exc:  # noqa: BLE001  (shutting down while waiting for room)
                logger.warning("ingest failed", input=self.name, error=str(exc))
