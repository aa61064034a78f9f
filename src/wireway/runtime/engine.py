"""The engine: stores, pattern runners, the HTTP server and the process lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.routing import BaseRoute

from wireway.config.model import Pattern
from wireway.connectors.base import AppService, EngineView, Input, InputContext
from wireway.connectors.hostport import bind
from wireway.envelope import Message, now_rfc3339
from wireway.errors import WirewayError
from wireway.observability import logging as log
from wireway.observability.events import Events
from wireway.observability.metrics import DLQ_SIZE, connection_closed, connection_opened, connections_now
from wireway.processors.base import ServiceT
from wireway.registry import lookup
from wireway.runtime.buffer_file import buffer_path
from wireway.runtime.buffer_limits import buffer_options
from wireway.runtime.memory import MemoryStore
from wireway.runtime.outbox import SqliteStore
from wireway.runtime.pattern import PatternRunner
from wireway.runtime.services.glue import build_supervisor, open_services, refused_hook, watch_ingest
from wireway.runtime.services.routes import as_dict
from wireway.runtime.store import Store
from wireway.web.app import FastPaths, build_app
from wireway.web.server import server_config

logger = log.get("engine")
GC_THRESHOLD = 10_000  # allocations between young-generation collections (default 700)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the engine owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _websocket(protocol: object) -> bool:
    """uvicorn's WebSocketProtocol / WSProtocol (an upgraded connection)."""
    name = type(protocol).__name__
    return "WebSocket" in name or name.startswith("WS")


def _keeps_position(pattern: Pattern) -> bool:
    specs = [lookup("input", iface.type) for iface in pattern.inputs]
    return any(spec is not None and getattr(spec.cls, "keeps_position", False) for spec in specs)


class Engine:
    """Runs a deployment (one or more patterns) until told to stop."""

    def __init__(
        self,
        patterns: list[Pattern],
        *,
        data_dir: Path,
        http: tuple[str, int] = ("127.0.0.1", 8080),
        extra_routes: list[BaseRoute] | None = None,
    ) -> None:
        self.patterns = patterns
        self.data_dir = data_dir
        self.http = http
        self.extra_routes = list(extra_routes or [])
        # a durable store also when only an input keeps a read position (a file tail)
        self.durable = any(p.settings.buffer == "durable" or _keeps_position(p) for p in patterns)
        self.sqlite: Store | None = None
        self.memory: Store = MemoryStore()
        self.runners: list[PatternRunner] = []
        self.routes: list[BaseRoute] = []
        self.stop_event = asyncio.Event()
        self.accepting = False
        self.started = time.time()
        self.services: list[AppService] = []
        self.app_services: dict[type[AppService], AppService] = {}
        self.events = Events()  # this engine's alone: an application hears of no other engine
        self.on_stop: list[Any] = []  # called first thing at shutdown
        # inputs that have not reached the end of what they read (InputContext.finished)
        self.unfinished: set[Input] = set()
        self._lock_fd: int | None = None
        self._dlq_cache: dict[str, int] = {}
        self.supervisor = build_supervisor(self)  # the `services:` sections, None without any

    # ----- lifecycle -----------------------------------------------------------------
    def lock_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / "wireway.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise WirewayError(
                f"another wireway instance is using {self.data_dir} (pass another --data-dir)"
            ) from None
        self._lock_fd = fd

    def store_for(self, pattern: Pattern) -> Store:
        if pattern.settings.buffer == "durable":
            assert self.sqlite is not None
            return self.sqlite
        return self.memory

    async def start(self) -> None:
        """Open stores, restore queues, start outputs, inputs and the HTTP server."""
        self.lock_data_dir()
        sock = bind(*self.http)
        if self.durable:
            options = buffer_options(p.settings for p in self.patterns if p.settings.buffer == "durable")
            self.sqlite = SqliteStore(buffer_path(self.data_dir), **options)
            await self.sqlite.open()
        await self.memory.open()
        pending = self.sqlite.pending() if self.sqlite else []
        for pattern in self.patterns:
            runner = PatternRunner(pattern, self.store_for(pattern), self.memory, self.events, self.sqlite)
            runner.on_dlq = self._dlq_changed
            runner.restore(pending)
            self.runners.append(runner)
        if pending:
            logger.info("restored undelivered messages", count=len(pending))
        self.services += self.build_applications()
        for started in self.services:
            await started.start()
            self.routes.extend(started.routes())
        for runner in self.runners:
            await runner.start_outputs()
        await self.redrive()
        # services start in order; the inputs of a pattern run as a service wait for it
        held = await open_services(self.supervisor, self.routes)
        # every input is counted before any starts, so one that ends at once (stdin at
        # EOF) cannot stop the engine while another is still starting
        self.unfinished = {inp for runner in self.runners for inp in runner.inputs}
        for runner in self.runners:
            if runner.name not in held:
                await runner.start_inputs(self.input_context)
        app = FastPaths(build_app(self, [*self.routes, *self.extra_routes]), self.routes)
        self.server = _Server(server_config(app, self.patterns))
        self.server_task = asyncio.create_task(self.server.serve([sock]), name="wireway[http]")
        self.poll_task = asyncio.create_task(self.poll(), name="wireway[engine].poll")
        self.accepting = True
        # what exists now (modules, routes, connectors) lives as long as the process:
        # keep it out of the collector's full passes, which paused the loop for up to
        # ~100 ms under load; fewer young-generation passes on the per-message garbage
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        for runner in self.runners:
            self._dlq_changed(runner.name)
        host, port = self.http
        logger.info(
            "wireway started",
            patterns=[p.name for p in self.patterns],
            http=f"http://{host}:{port}",
            data_dir=str(self.data_dir),
        )

    def build_applications(self) -> list[AppService]:
        """One instance of every application service class the components name, handed
        to each of them; each sees only the patterns whose components use it. Every
        component learns the data folder here too."""
        users: dict[type[AppService], list[PatternRunner]] = {}
        wanting: list[tuple[type[AppService], Any]] = []
        for runner in self.runners:
            for component in [*runner.steps, *runner.inputs, *(r.output for r in runner.routes)]:
                component.data_dir = self.data_dir
                cls = component.service_class
                if cls is None:
                    continue
                runners = users.setdefault(cls, [])
                if runner not in runners:
                    runners.append(runner)
                wanting.append((cls, component))
        built = self.app_services
        for cls, runners in users.items():
            built[cls] = cls(self.view(runners))
        for cls, component in wanting:
            component.use_service(built[cls])
        return list(built.values())

    def service(self, cls: type[ServiceT]) -> ServiceT | None:
        """This engine's instance of an application service class, if a component named it."""
        found = self.app_services.get(cls)
        return found if isinstance(found, cls) else None

    def view(self, runners: list[PatternRunner]) -> EngineView:
        """What an application of these patterns sees of the engine."""

        async def publish(messages: list[Message]) -> None:
            for runner in runners:
                await runner.publish(messages)

        return EngineView(
            data_dir=self.data_dir,
            http_address=self.http,
            queue_depth=lambda: sum(r.queue.depth for runner in runners for r in runner.routes),
            dlq_depth=lambda: sum(runner.store.dlq_depth(runner.name) for runner in runners),
            publish=publish,
            events=self.events,
            app_services=self.app_services,
            services=self.supervisor,
        )

    def input_context(self, runner: PatternRunner, inp: Input) -> InputContext:
        return InputContext(
            ingest=watch_ingest(self.supervisor, runner.ingest, runner.name),
            add_routes=self.routes.extend,
            connection_opened=connection_opened,
            connection_closed=connection_closed,
            full=runner.full,
            position=runner.position,
            finished=lambda: self.input_finished(inp),
            refused=refused_hook(self.supervisor, inp.name, runner.name),
        )

    def input_finished(self, inp: Input) -> None:
        """An input reached the end of what it reads: once every input of every pattern
        has, stop as on SIGTERM (what is queued is delivered, up to settings.timeout)."""
        if inp not in self.unfinished:
            return
        self.unfinished.discard(inp)
        if not self.unfinished:
            logger.info("every input has finished: stopping")
            self.stop_event.set()

    async def poll(self) -> None:
        """Pick up DLQ redrives from the CLI and refresh gauges, once a second."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.redrive()
                self.refresh_gauges()
            except Exception as exc:  # noqa: BLE001
                logger.warning("poll failed", error=str(exc))

    async def redrive(self) -> None:
        if self.sqlite is None:
            return
        letters = await self.sqlite.take_redrives()
        if not letters:
            return
        by_pattern = {r.name: r for r in self.runners}
        count = 0
        for letter in letters:
            runner = by_pattern.get(letter.pattern)
            if runner is None:
                logger.warning("redrive: unknown pattern", pattern=letter.pattern)
                continue
            route = next((r for r in runner.routes if r.queue_name == letter.queue), None)
            letter.message.metadata.retry_count = 0
            if route is not None:
                items = await runner.store.enqueue([(route.queue_name, letter.message)])
                route.queue.put(items)
            else:
                await runner.ingest([letter.message.payload], source=letter.message.source)
            count += 1
        logger.info("redriven from the DLQ", count=count)
        for runner in self.runners:
            self._dlq_changed(runner.name)

    async def run_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signal)
        await self.stop_event.wait()
        await self.shutdown()

    def _signal(self) -> None:
        if self.stop_event.is_set():
            logger.warning("second signal: exiting at once")
            os._exit(130)
        self.stop_event.set()

    async def shutdown(self) -> None:
        """Stop inputs, drain outputs for up to settings.timeout, close everything."""
        t0 = time.monotonic()
        for callback in self.on_stop:
            callback()
        self.accepting = False
        for runner in self.runners:
            await runner.stop_inputs()
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server_task, 10)
        timeout = max((p.settings.timeout for p in self.patterns), default=30.0)
        # polling is simplest here: drained() spans every queue of every pattern
        while not all(r.drained() for r in self.runners) and time.monotonic() - t0 < timeout:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        self.poll_task.cancel()
        for runner in self.runners:
            await runner.stop_outputs()
            await runner.flush_acks()
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception as exc:  # noqa: BLE001  (keep stopping the others)
                logger.warning("service stop failed", service=service.name, error=str(exc))
        if self.supervisor is not None:  # after the patterns, dependents first
            await self.supervisor.close()
        left = sum(r.queue.depth for runner in self.runners for r in runner.routes)
        delivered = sum(r.delivered for runner in self.runners for r in runner.routes)
        if self.sqlite:
            await self.sqlite.close()
        await self.memory.close()
        if self._lock_fd is not None:  # another engine (in this process too) may use the folder now
            os.close(self._lock_fd)
            self._lock_fd = None
        logger.info(
            "wireway stopped",
            seconds=round(time.monotonic() - t0, 2),
            delivered=delivered,
            left_in_buffer=left,
        )

    # ----- views ---------------------------------------------------------------------
    def _dlq_changed(self, pattern: str) -> None:
        runner = next((r for r in self.runners if r.name == pattern), None)
        if runner is None:
            return
        depth = runner.store.dlq_depth(pattern)
        self._dlq_cache[pattern] = depth
        DLQ_SIZE.labels(pattern).set(depth)

    def refresh_gauges(self) -> None:
        if self.server is not None:  # HTTP keep-alive connections (upgraded WebSockets count apart)
            conns = self.server.server_state.connections
            connections_now("http", sum(1 for c in conns if not _websocket(c)))
        for runner in self.runners:
            self._dlq_changed(runner.name)
            for route in runner.routes:
                route.update_gauges()

    def _keeping(self) -> list[str]:
        """Why the process cannot accept and keep messages at all (empty: it can)."""
        down: list[str] = []
        if not self.accepting:
            down.append("engine: not accepting")
        if self.durable and (self.sqlite is None or not getattr(self.sqlite, "healthy", True)):
            down.append("buffer: not writable")
        return down

    def readiness(self) -> tuple[bool, list[str]]:
        """/ready: ready when the process can keep messages and no service holds them back.

        The list says why not (`name: reason`), then names the components that are down
        while the process is ready all the same (an MQTT input reconnecting while HTTP
        ingestion carries on), so a probe that answers 200 still shows them.
        """
        blocking = self._keeping()
        if (full := getattr(self.sqlite, "full", None)) is not None and full.reason:
            blocking.append(f"buffer: {full.reason}")  # inputs are pushed back meanwhile
        blocking += [f"{s.name}: {why}" for s in self.services if (why := s.holding_back())]
        named = {reason.partition(":")[0] for reason in blocking}
        services = self.health()["services"]
        down = [name for name, state in services.items() if state != "up" and name not in named]
        return (not blocking), blocking + down

    def health(self) -> dict[str, Any]:
        # a service holding messages back (e.g. its database not reached yet) is
        # `degraded`, not `unhealthy`: a liveness probe must not restart the process for it
        ok = not self._keeping()
        services: dict[str, str] = {"buffer": "up" if ok or not self.accepting else "down"}
        for runner in self.runners:
            for route in runner.routes:
                services[route.queue_name] = "up" if route.breaker.state == "closed" else "down"
                services.update(route.output.health())
            for inp in runner.inputs:
                services.update(inp.health())
        for service in self.services:
            services.update(service.health())
        degraded = any(v != "up" for v in services.values())
        status = "unhealthy" if not ok else ("degraded" if degraded else "healthy")
        return {"status": status, "timestamp": now_rfc3339(), "services": services}

    def status(self) -> dict[str, Any]:
        sup = self.supervisor
        return {
            "timestamp": now_rfc3339(),
            "uptime_seconds": round(time.time() - self.started, 1),
            "accepting": self.accepting,
            "data_dir": str(self.data_dir),
            "patterns": [r.status(self._dlq_cache.get(r.name, 0)) for r in self.runners],
            **({"services": [as_dict(s) for s in sup.status()]} if sup else {}),
        }
