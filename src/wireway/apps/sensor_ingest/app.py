"""The sensor application: one shared service behind its connectors and API routes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

from wireway.apps.sensor_ingest import metrics
from wireway.apps.sensor_ingest.auth import RETRY_UNREADY, Keys
from wireway.apps.sensor_ingest.devices import Devices
from wireway.apps.sensor_ingest.migrations import migrate
from wireway.config.model import Security
from wireway.connectors.base import Service
from wireway.connectors.sql.db import Database, open_database
from wireway.errors import BackpressureError, NotConnected
from wireway.observability import events
from wireway.observability import logging as log
from wireway.observability.metrics import observe_many
from wireway.processors.dedupe import SeenCache, shared_cache
from wireway.runtime.backoff import backoff

logger = log.get("sensor-app")
DEFAULT_STORAGE = "sqlite:///{data_dir}/wireway.db"  # the buffer has its own file, buffer.db
EARLIER_DEFAULT = "sensors.db"  # the default before: a data dir that has it keeps using it
SEEN_WINDOW = 100_000  # message ids remembered for 409s and redeliveries (~12 MB)
CONNECT_BACKOFF_MAX = 30.0  # s between attempts to reach a storage that was never reached
READY_WAIT = 5.0  # s an ingest call waits for that storage before it is refused


def default_storage() -> str:
    """$WIREWAY_STORAGE, else `<data-dir>/wireway.db` (or the data dir's existing
    sensors.db, where earlier versions stored readings)."""
    data_dir = os.environ.get("WIREWAY_DATA_DIR", "data")
    if os.environ.get("WIREWAY_STORAGE"):
        return os.environ["WIREWAY_STORAGE"]
    if (Path(data_dir) / EARLIER_DEFAULT).exists():
        return f"sqlite:///{data_dir}/{EARLIER_DEFAULT}"
    return DEFAULT_STORAGE.format(data_dir=data_dir)


class SensorApp(Service):
    """Devices, keys, alerts, occupancy and the live hub, shared by the app's connectors."""

    name = "sensor-app"

    def __init__(self) -> None:
        self.storage = default_storage()
        self.security = Security()
        self.unknown_devices = "accept"
        self.db: Database | None = None
        self.devices: Devices | None = None
        self.keys: Keys | None = None
        self.seen: SeenCache = shared_cache("sensors", SEEN_WINDOW)
        # ids of readings (payload dicts) the HTTP input checked, while its ingest call
        # runs: sensor_enrich need not check them again (the objects are alive meanwhile,
        # so no other object can have one of these ids)
        self.checked: set[int] = set()
        self.alerts: Any = None  # AlertEngine, set by the sensor_alerts output
        self.occupancy: Any = None  # OccupancyTracker, set by the sensor_state output
        self.hub: Any = None  # the websocket Hub, when a websocket output is present
        self.route_factories: list[Any] = []
        self.started = False
        self.storage_up = False
        self.ready = asyncio.Event()  # set once the storage was reached and loaded
        self._on_ready: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.queue_depth: Any = lambda: (0, 0)
        self.patterns: set[str] = set()
        # output name -> `operation` label of sensor_data_processing_latency_seconds
        self.operations = {
            "storage": "store",
            "live": "broadcast",
            "alerts": "alerts",
            "state": "devices",
        }

    def attach(self, engine: Any) -> None:
        def depth() -> tuple[int, int]:
            queue = sum(r.queue.depth for runner in engine.runners for r in runner.routes)
            dlq = sum(runner.store.dlq_depth(runner.name) for runner in engine.runners)
            return queue, dlq

        self.queue_depth = depth
        self.patterns = {p.name for p in engine.patterns}

    def configure(self, *, storage: str, security: Security, unknown_devices: str) -> None:
        self.storage = storage or default_storage()
        self.security = security
        self.unknown_devices = unknown_devices

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        data_dir = Path(os.environ.get("WIREWAY_DATA_DIR", "data"))
        self.db = open_database(self.storage, data_dir=data_dir)
        self.devices = Devices(self.db)
        self.keys = Keys(self.db, self.security)
        self.ready = asyncio.Event()
        events.on_rejection(self._rejected)
        events.on_delivered(self._delivered)
        try:
            await self.connect()
        except NotConnected as exc:  # any other error (a migration that fails) stops the start
            # a database that comes up after us (a pod started before its database):
            # run, report storage down, hold readings back until it answers
            logger.warning("storage unreachable; retrying", storage=self.db.url, error=str(exc))
            self._tasks.append(asyncio.create_task(self.connect_later(), name="wireway[sensor-app].connect"))
        except BaseException:
            self.started = False  # a later start (in this process) tries again from scratch
            with contextlib.suppress(Exception):
                await self.db.close()
            raise
        self._tasks.append(asyncio.create_task(self.refresh_loop(), name="wireway[sensor-app].refresh"))

    async def connect(self) -> None:
        """Reach the storage, migrate it, and load devices, keys and recent ids."""
        assert self.db is not None
        assert self.devices is not None
        assert self.keys is not None
        await self.db.open()
        await migrate(self.db)
        await self.devices.load()
        created = await self.keys.ensure_admin()
        if created and self.keys.enabled:
            # printed once on the console, never in the structured log
            print(f"\nwireway: admin API key (shown once): {created}\n", file=sys.stderr, flush=True)
        await self.keys.refresh()
        await self.warm_seen()
        for load in self._on_ready:
            await load()
        self._on_ready.clear()
        self.storage_up = True
        self.ready.set()
        logger.info("sensor application ready", storage=self.db.url, devices=len(self.devices.metadata))

    async def when_ready(self, load: Callable[[], Awaitable[None]]) -> None:
        """Run `load` (an output reading its state back) now if the storage was reached,
        else as soon as it is, before any reading is let through."""
        if self.ready.is_set():
            await load()
        else:
            self._on_ready.append(load)

    async def connect_later(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            await asyncio.sleep(backoff(attempt, 0.5, CONNECT_BACKOFF_MAX))
            try:
                await self.connect()
                return
            except NotConnected as exc:
                logger.warning("storage still unreachable", error=str(exc), attempt=attempt)
            except Exception as exc:  # noqa: BLE001  (reached but unusable: say so, keep trying)
                logger.error(
                    "storage reached but not usable; readings stay held back",
                    error=f"{type(exc).__name__}: {exc}",
                    attempt=attempt,
                )

    @property
    def waiting(self) -> bool:
        """Started, but the storage not reached yet (nothing may use it)."""
        return self.started and not self.ready.is_set()

    async def wait_ready(self) -> None:
        """Return once the storage was reached, or raise BackpressureError (so an HTTP
        sender gets 503 and an MQTT message goes unacknowledged: the broker keeps it)."""
        if not self.waiting:  # ready, or not started (a step used without its services)
            return
        try:
            await asyncio.wait_for(self.ready.wait(), READY_WAIT)
        except TimeoutError:
            raise BackpressureError("sensor storage (not reached yet)", RETRY_UNREADY) from None

    def use_hub(self, hub: Any) -> None:
        """Share the live hub; with authentication on, its clients need a key or JWT."""
        self.hub = hub
        # set (or cleared) for this run: the hub outlives an engine in one process
        from wireway.apps.sensor_ingest import live

        live.install(hub, self.ws_authenticate if self.keys is not None and self.keys.enabled else None)

    async def ws_authenticate(
        self, headers: dict[str, str], query: dict[str, str], first: dict[str, Any] | None
    ) -> str | None:
        """None when the WebSocket client may connect, else why not."""
        from wireway.apps.sensor_ingest.auth import AuthError

        assert self.keys is not None
        auth = headers.get("authorization", "")
        api_key = headers.get("x-api-key") or query.get("api_key") or (first or {}).get("api_key")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        bearer = bearer or query.get("token") or (first or {}).get("token")
        if not api_key and not bearer:
            return "missing credentials"
        try:
            self.keys.authenticate(api_key, bearer)
        except AuthError as exc:
            return exc.message
        return None

    def _rejected(self, pattern: str, reason: str) -> None:
        if pattern in self.patterns:
            metrics.count_rejection(pattern, reason)

    def _delivered(self, pattern: str, output: str, latencies: list[float]) -> None:
        if pattern in self.patterns and output in self.operations:
            observe_many(metrics.LATENCY.labels(self.operations[output]), latencies)

    async def warm_seen(self) -> None:
        """Remember the newest stored message ids so a late redelivery is still a duplicate."""
        assert self.db is not None
        self.seen.clear()  # what counts is this storage's content
        rows = await self.db.fetch(
            "SELECT DISTINCT message_id FROM (SELECT message_id FROM sensor_readings "
            f"ORDER BY id DESC LIMIT {SEEN_WINDOW}) recent"
        )
        for r in rows:
            self.seen.add(r["message_id"])

    async def refresh_loop(self) -> None:
        """Reload keys (revocations apply within 2 s), check the database and vacate
        devices whose occupancy hold ran out (their changes reach the gauges and live
        clients through the tracker's on_change)."""
        while True:
            await asyncio.sleep(2.0)
            assert self.db is not None
            assert self.keys is not None
            if not self.ready.is_set():
                continue  # connect_later() is still trying
            try:
                await self.keys.refresh()
                self.storage_up = True
            except Exception as exc:  # noqa: BLE001  (the database may be away for a while)
                self.storage_up = await self.db.ping()
                logger.warning("key refresh failed", error=str(exc))
            if self.occupancy is not None:
                try:
                    self.occupancy.tick()
                except Exception as exc:  # noqa: BLE001  (keep refreshing keys)
                    logger.warning("occupancy tick failed", error=str(exc))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping regardless
                await task
        self._tasks.clear()
        self.ready = asyncio.Event()
        self._on_ready.clear()
        self.storage_up = False
        self.hub = None  # the next start's outputs attach it again, with that run's security
        if self.db is not None:
            await self.db.close()
        self.started = False

    def routes(self) -> list[BaseRoute]:
        from wireway.apps.sensor_ingest.api import api_routes

        return api_routes(self)

    def health(self) -> dict[str, str]:
        return {"storage": "up" if self.storage_up else "down"}

    def holding_back(self) -> str | None:
        if self.waiting:
            return "storage not reached yet (readings held back)"
        return None


_APP: SensorApp | None = None


def sensor_app() -> SensorApp:
    """The process's one sensor application."""
    global _APP
    if _APP is None:
        _APP = SensorApp()
    return _APP
