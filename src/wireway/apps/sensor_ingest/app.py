"""The sensor application: the service its connectors, steps and API routes share."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from wireway.apps.sensor_ingest import live, metrics
from wireway.apps.sensor_ingest.alerts import AlertEngine, alert_message
from wireway.apps.sensor_ingest.auth import RETRY_UNREADY, Keys
from wireway.apps.sensor_ingest.devices import Devices
from wireway.apps.sensor_ingest.migrations import migrate, tables
from wireway.apps.sensor_ingest.occupancy import OccupancyTracker, location_of, occupancy_message
from wireway.config.model import Security
from wireway.connectors.base import AppService, EngineView
from wireway.connectors.sql.db import DEFAULT_OWN_SCHEMA, Database, open_database
from wireway.connectors.websocket import Hub, WebSocketHubs
from wireway.connectors.websocket.clients import Scope
from wireway.envelope import Message
from wireway.errors import BackpressureError, NotConnected
from wireway.observability import logging as log
from wireway.observability.metrics import observe_many
from wireway.processors.dedupe import SeenCache
from wireway.runtime.backoff import backoff

logger = log.get("sensor-app")
SEEN_WINDOW = 100_000  # message ids remembered for 409s and redeliveries (~12 MB)
CONNECT_BACKOFF_MAX = 30.0  # s between attempts to reach a storage that was never reached
READY_WAIT = 5.0  # s an ingest call waits for that storage before it is refused
REFRESH_EVERY = 2.0  # s between key reloads (revocations apply within that) and occupancy ticks
READINGS_TYPE = "sensor-data"  # the messageType of a reading once sensor_enrich passed it
LIVE_PATH = "/ws"  # the websocket path whose clients get the application's live rules


class InFlight:
    """Message ids whose ingest call is under way (`seen` only gets them once durable).

    A request that finds one of its ids here waits for that attempt to end, then
    answers by its outcome. The usual request only adds and removes its ids; an
    event is made only for an id someone waits on.
    """

    def __init__(self) -> None:
        self._ids: dict[str, asyncio.Event | None] = {}

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def hold(self, ids: list[str]) -> None:
        for message_id in ids:
            self._ids[message_id] = None

    def release(self, ids: list[str]) -> None:
        for message_id in ids:
            waiting = self._ids.pop(message_id, None)
            if waiting is not None:
                waiting.set()

    async def settled(self, ids: list[str]) -> None:
        """Return once none of `ids` is in flight (this request holds none meanwhile, so
        two requests never wait for each other)."""
        for message_id in ids:
            if message_id in self._ids:
                waiting = self._ids[message_id]
                if waiting is None:
                    waiting = self._ids[message_id] = asyncio.Event()
                await waiting.wait()


class SensorApp(AppService):
    """Devices, keys, alerts, occupancy and recent message ids of the sensor application.

    Its components configure it when the engine hands it to them: `sensor_http`
    gives the storage URL, the security section and the unknown-device policy,
    `sensor_alerts` the alert engine and `sensor_occupancy` the tracker.
    """

    name = "sensor-app"

    def __init__(self, view: EngineView) -> None:
        super().__init__(view)
        self.storage = ""
        self.schema = DEFAULT_OWN_SCHEMA  # where the application's own tables live
        self.security = Security()
        self.unknown_devices = "accept"
        self.db: Database | None = None
        self.devices: Devices | None = None
        self.keys: Keys | None = None
        self.seen = SeenCache(SEEN_WINDOW)
        self.in_flight = InFlight()
        # inputs that check every reading themselves before ingesting it (sensor_http):
        # sensor_enrich does not check their readings again
        self.checked_sources: set[str] = set()
        self.api_mounted = False  # the read and admin API, mounted by the sensor_http input
        self.alerts: AlertEngine | None = None
        self.occupancy: OccupancyTracker | None = None
        self.occupancy_changes: list[dict[str, Any]] = []  # told by the tracker, not yet sent
        self.hub: Hub | None = None  # the live hub whose clients need a key (authentication on)
        self.patterns: set[str] = set()
        self.storage_up = False
        self.ready = asyncio.Event()  # set once the storage was reached and loaded
        self._on_ready: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        # output name -> `operation` label of sensor_data_processing_latency_seconds
        self.operations = {"storage": "store", "live": "broadcast", "alerts": "alerts", "state": "devices"}

    # ----- configuration by the components -------------------------------------------
    def configure(
        self, *, storage: str, security: Security, unknown_devices: str, schema: str, pattern: str
    ) -> None:
        self.storage = storage
        self.schema = schema
        self.security = security
        self.unknown_devices = unknown_devices
        self.patterns.add(pattern)

    def track_occupancy(self, hold_seconds: float) -> OccupancyTracker:
        """The occupancy tracker (made once): its changes update the gauges at once and
        wait in `occupancy_changes` to be sent as messages."""
        if self.occupancy is None:
            tracker = OccupancyTracker(hold_seconds=hold_seconds)

            def changed(event: dict[str, Any]) -> None:
                metrics.occupancy_changed(event, tracker.occupied_in)
                self.occupancy_changes.append(event)

            tracker.on_change = changed
            self.occupancy = tracker
        return self.occupancy

    def occupancy_messages(self) -> list[Message]:
        """The occupancy changes told since the last call, as messages."""
        if not self.occupancy_changes:
            return []
        changes, self.occupancy_changes = self.occupancy_changes, []
        return [occupancy_message(event) for event in changes]

    # ----- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self.db = open_database(
            self.storage or f"sqlite:///{self.view.data_dir}/wireway.db",
            data_dir=self.view.data_dir,
            own_schema=self.schema,
        )
        self.devices = Devices(self.db)
        self.keys = Keys(self.db, self.security)
        hubs = self.view.service(WebSocketHubs)  # the engine's, when it has websocket outputs
        hub = hubs.get(LIVE_PATH) if hubs is not None else None
        if hub is not None:
            self.use_hub(hub)
        try:
            await self.connect()
        except NotConnected as exc:  # any other error (a migration that fails) stops the start
            # a database that comes up after us (a pod started before its database):
            # run, report storage down, hold readings back until it answers
            logger.warning("storage unreachable; retrying", storage=self.db.url, error=str(exc))
            self._tasks.append(asyncio.create_task(self.connect_later(), name="wireway[sensor-app].connect"))
        except BaseException:
            with contextlib.suppress(Exception):
                await self.db.close()
            raise
        self._tasks.append(asyncio.create_task(self.refresh_loop(), name="wireway[sensor-app].refresh"))
        # the engine's event listeners; a start that failed above leaves none behind
        self.view.events.on_rejection(self._rejected)
        self.view.events.on_delivered(self._delivered)

    async def connect(self) -> None:
        """Reach the storage, migrate it, and load devices, keys, recent ids and open alerts."""
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
        if self.alerts is not None:
            open_alerts = f"SELECT * FROM {tables(self.db).alerts} WHERE state <> 'cleared'"
            self.alerts.load(await self.db.fetch(open_alerts))
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
        return self.db is not None and not self.ready.is_set()

    async def wait_ready(self) -> None:
        """Return once the storage was reached, or raise BackpressureError (so an HTTP
        sender gets 503 and an MQTT message goes unacknowledged: the broker keeps it)."""
        if not self.waiting:
            return
        try:
            async with asyncio.timeout(READY_WAIT):
                await self.ready.wait()
        except TimeoutError:
            raise BackpressureError("sensor storage (not reached yet)", RETRY_UNREADY) from None

    def use_hub(self, hub: Hub) -> None:
        """The sensor rules on the live hub; with authentication on, its clients need a
        key or JWT."""
        self.hub = hub
        live.install(hub, self.ws_authenticate if self.keys is not None and self.keys.enabled else None)

    async def ws_authenticate(
        self, headers: dict[str, str], query: dict[str, str], first: dict[str, Any] | None
    ) -> str | Scope | None:
        """Whether the WebSocket client may connect: None (an admin: every message), its
        device's scope (a device key or JWT: its own readings and alerts), else why not."""
        from wireway.apps.sensor_ingest.alerts import ALERT_TYPE
        from wireway.apps.sensor_ingest.auth import AuthError

        assert self.keys is not None
        auth = headers.get("authorization", "")
        api_key = headers.get("x-api-key") or query.get("api_key") or (first or {}).get("api_key")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        bearer = bearer or query.get("token") or (first or {}).get("token")
        if not api_key and not bearer:
            return "missing credentials"
        try:
            principal = self.keys.authenticate(api_key, bearer)
        except AuthError as exc:
            return exc.message
        if principal.admin:
            return None
        if not principal.device_id:  # a device credential naming no device sees nothing
            return "device credential without a device"
        return live.device_scope(principal.device_id, (READINGS_TYPE, ALERT_TYPE))

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
        self.seen.add_many(r["message_id"] for r in rows)

    # ----- changes that no reading brings --------------------------------------------
    async def change_alert(self, alert_id: str, action: str) -> dict[str, Any] | None:
        """Acknowledge (`ack`) or clear an alert through the API; its event leaves as a
        message like any other. None for an unknown alert."""
        assert self.alerts is not None
        change = self.alerts.acknowledge if action == "ack" else self.alerts.clear
        alert, changes = change(alert_id)
        if changes:
            await self.view.publish([alert_message(event) for event in changes])
        return alert

    async def move_device(self, device_id: str, metadata: dict[str, Any]) -> None:
        """A device's metadata changed: its occupancy counts at its location from now on."""
        if self.occupancy is not None:
            self.occupancy.move(device_id, location_of(metadata))
            await self.send_occupancy_changes()

    async def send_occupancy_changes(self) -> None:
        """Put the occupancy changes no reading carried (a hold running out, a device
        moved) in the outboxes; kept for the next call if they cannot be stored now."""
        messages = self.occupancy_messages()
        if not messages:
            return
        try:
            await self.view.publish(messages)
        except BaseException:
            self.occupancy_changes[:0] = [msg.payload for msg in messages]
            raise

    async def refresh_loop(self) -> None:
        """Reload keys, check the database and vacate devices whose occupancy hold ran
        out (their changes leave as messages)."""
        while True:
            await asyncio.sleep(REFRESH_EVERY)
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
                    await self.send_occupancy_changes()
                except Exception as exc:  # noqa: BLE001  (keep refreshing keys)
                    logger.warning("occupancy tick failed", error=str(exc))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping regardless
                await task
        self._tasks.clear()
        self.storage_up = False
        if self.db is not None:
            await self.db.close()

    def health(self) -> dict[str, str]:
        return {"storage": "up" if self.storage_up else "down"}

    def holding_back(self) -> str | None:
        if self.waiting:
            return "storage not reached yet (readings held back)"
        return None
