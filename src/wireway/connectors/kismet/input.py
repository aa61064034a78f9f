"""The `kismet` input: poll Kismet's devices by last-seen time (the cursor stored with
the messages), check `/system/timestamp.json`, and read its eventbus websocket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec

from wireway.config.model import Interface, Pattern
from wireway.connectors.base import Input, InputContext
from wireway.connectors.durations import seconds
from wireway.connectors.kismet.config import KismetInputConfig
from wireway.connectors.kismet.eventbus import Eventbus, retry_wait
from wireway.envelope import Message, stable_id
from wireway.observability import logging as log
from wireway.observability.metrics import INPUT_ERRORS
from wireway.processors.devices_view import DevicesView
from wireway.registry import register_input

logger = log.get("kismet")

CHUNK = 1000  # devices handed to the pattern at once (the cursor goes with the last chunk)
TIMESTAMP = "/system/timestamp.json"
_encode = msgspec.json.Encoder().encode


class PollError(Exception):
    """A poll that brought nothing usable: the reason is logged and it is retried."""


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


@register_input("kismet", config=KismetInputConfig)
class KismetInput(Input):
    """Devices from Kismet's REST API by last-seen time; events from its eventbus."""

    keeps_position = True
    formats = ("json",)  # Kismet answers JSON; the input decodes it itself
    service_class = DevicesView  # the engine's board of latest devices, for applications' APIs
    config: KismetInputConfig

    def __init__(self, config: KismetInputConfig, iface: Interface, pattern: Pattern) -> None:
        super().__init__(config, iface, pattern)
        self.base_url = config.url.rstrip("/")
        self.interval = seconds(config.interval, "interval")
        self.timeout = seconds(config.timeout, "timeout")
        self.health_interval = seconds(config.health_interval, "health_interval")
        self.max_backoff = seconds(config.max_backoff, "max_backoff")
        self.since = seconds(config.since, "since") if config.since is not None else None
        self.fields, self.time_name = config.request_fields()
        self.cursor: int | float | None = None  # the newest last_time seen
        self.boundary: set[str] = set()  # ids of the records answered at the cursor's second
        self.failures = 0  # polls in a row that failed
        self.errors = 0  # polls that failed since start
        self.polls = 0  # polls that worked since start
        self.problem: str | None = None  # why the last poll failed
        self.unreachable: str | None = None  # why the last /system/timestamp.json check failed
        self.server_time: float | None = None  # Kismet's clock at the last check
        self.bus: Eventbus | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.board: DevicesView | None = None

    def use_service(self, service: Any) -> None:
        if isinstance(service, DevicesView):
            self.board = service

    def auth_headers(self) -> dict[str, str]:
        cfg = self.config
        if cfg.api_token is not None:
            return {"cookie": f"KISMET={cfg.api_token}"}
        if cfg.username is not None:
            token = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
            return {"authorization": f"Basic {token}"}
        return {}

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        stored = ctx.position(self.name)
        if stored is not None:
            try:
                self.cursor = _number(msgspec.json.decode(stored))
            except msgspec.DecodeError:
                logger.warning("stored cursor unreadable, starting over", input=self.name)
        self.client = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, headers=self.auth_headers(), trust_env=False
        )
        name = f"wireway[{self.pattern.name}/input:{self.name}]"
        if self.config.devices:
            self.tasks.append(asyncio.create_task(self.poll_forever(), name=f"{name}.poll"))
        self.tasks.append(asyncio.create_task(self.check_forever(), name=f"{name}.health"))
        if self.config.eventbus:
            self.bus = Eventbus(
                base_url=self.base_url,
                headers=self.auth_headers(),
                topics=self.config.eventbus,
                deliver=self.deliver_events,
                name=self.name,
                timeout=self.timeout,
                max_backoff=self.max_backoff,
            )
            self.tasks.append(asyncio.create_task(self.bus.run_forever(), name=f"{name}.eventbus"))
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if tasks:
            await self.client.aclose()

    def health(self) -> dict[str, str]:
        if not self.tasks:
            return {}
        bus_down = self.bus is not None and not self.bus.connected
        down = self.failures or self.unreachable is not None or bus_down
        return {self.name: "down" if down else "up"}

    # ----- devices ---------------------------------------------------------------------
    async def poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await self.poll()
            except Exception as exc:  # noqa: BLE001  (a refused poll or a failed ingest: retried)
                if isinstance(exc, httpx.ConnectError):  # nothing listens on Kismet's port
                    self.ctx.refused()
                self.failures += 1
                self.errors += 1
                self.problem = str(exc)
                INPUT_ERRORS.labels(self.pattern.name, self.name).inc()
                self.state = "retrying"
                wait = retry_wait(self.failures, self.interval, self.max_backoff)
                logger.warning(
                    "kismet poll failed",
                    input=self.name,
                    error=self.problem,
                    failures=self.failures,
                    retry_in=round(wait, 2),
                )
                await asyncio.sleep(wait)
                continue
            if self.failures:
                logger.info("kismet poll works again", input=self.name, after_failures=self.failures)
            self.failures, self.problem, self.state = 0, None, "running"
            self.polls += 1
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - began)))

    def since_arg(self) -> str:
        """The timestamp in the request path: Kismet answers devices seen after it."""
        if self.cursor is not None:
            return str(math.floor(self.cursor) - 1)  # the cursor's own second again
        if self.since is not None:
            return str(-math.ceil(self.since))  # negative: relative to Kismet's now
        return "0"

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise PollError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        if response.status_code in (401, 403):
            raise PollError(
                f"HTTP {response.status_code}: Kismet refused the login"
                " (check api_token, or username and password)"
            )
        if not response.is_success:
            raise PollError(f"HTTP {response.status_code}: {response.text[:200]}")
        return response

    async def poll(self) -> None:
        """One request; its devices are ingested with the cursor they give."""
        command: dict[str, Any] = {"fields": self.fields}
        if self.config.regex:
            command["regex"] = self.config.regex
        # Kismet's command dictionary: a form variable `json` (every version since 2019)
        form = urlencode({"json": _encode(command).decode()})
        response = await self.request(
            "POST",
            f"/devices/last-time/{self.since_arg()}/devices.json",
            content=form.encode(),
            headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        try:
            records = msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            raise PollError(f"not JSON: {exc}") from exc
        if not isinstance(records, list):
            raise PollError(f"expected a JSON array of devices, got {type(records).__name__}")
        messages, errors = self.messages(records)
        times = [_number(msg.payload.get(self.time_name)) for msg in messages]
        newest = max([t for t in times if t is not None], default=self.cursor)
        if self.cursor is not None and newest is not None and newest < self.cursor:
            newest = self.cursor
        # the cursor's second is asked again: what was answered for it unchanged is not new
        fresh = [msg for msg in messages if msg.message_id not in self.boundary]
        self.boundary = {msg.message_id for msg, t in zip(messages, times, strict=True) if t == newest}
        messages = fresh
        if not messages and not errors:
            self.cursor = newest
            return
        position = (self.name, _encode(newest)) if newest is not None else None
        for start in range(0, max(len(messages), 1), CHUNK):
            last = start + CHUNK >= len(messages)
            await self.ctx.ingest(
                messages[start : start + CHUNK],
                source=self.name,
                errors=errors if start == 0 else None,
                position=position if last else None,
            )
        self.cursor = newest
        if self.board is not None:
            self.board.devices(self.name, [msg.payload for msg in messages])

    def messages(self, records: list[Any]) -> tuple[list[Message], list[tuple[Any, str]]]:
        """One message per device record; its id is derived from the record, so a record
        answered twice (the cursor's second is asked again) is the same message."""
        messages: list[Message] = []
        errors: list[tuple[Any, str]] = []
        for record in records:
            if not isinstance(record, dict):
                errors.append((record, "kismet: a device record is not a JSON object"))
                continue
            messages.append(
                Message(
                    message_id=stable_id("kismet", self.name, _encode(record).decode()),
                    timestamp="",
                    payload=record,
                    source=self.name,
                )
            )
        return messages, errors

    # ----- health and events -----------------------------------------------------------
    async def check_forever(self) -> None:
        """Ask Kismet's clock every `health_interval` (sooner while it does not answer):
        /health shows whether it answers."""
        failures = 0
        while True:
            try:
                response = await self.request("GET", TIMESTAMP)
                body = msgspec.json.decode(response.content)
                sec = _number(body.get("kismet.system.timestamp.sec")) if isinstance(body, dict) else None
                if sec is None:
                    raise PollError(f"{TIMESTAMP}: no kismet.system.timestamp.sec")
                usec = _number(body.get("kismet.system.timestamp.usec")) or 0
                self.server_time = sec + usec / 1e6
                if self.unreachable is not None:
                    logger.info("kismet answers again", input=self.name)
                self.unreachable, failures = None, 0
                if self.board is not None:
                    self.board.answering(self.name, None)
            except (PollError, msgspec.DecodeError) as exc:
                if self.unreachable is None:
                    logger.warning("kismet does not answer", input=self.name, error=str(exc))
                self.unreachable = str(exc)
                failures += 1
                if self.board is not None:
                    self.board.answering(self.name, self.unreachable)
            wait = self.health_interval
            if failures:
                wait = min(wait, retry_wait(failures, self.health_interval, self.max_backoff))
            await asyncio.sleep(wait)

    async def deliver_events(self, messages: list[Message], errors: list[tuple[Any, str]]) -> None:
        await self.ctx.ingest(messages, source=self.name, errors=errors)
        if self.board is not None:
            for msg in messages:
                event = msg.payload.get("event")
                if msg.payload.get("topic") == "ALERT" and isinstance(event, dict):
                    self.board.alert(self.name, event)
