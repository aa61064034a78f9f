"""The `gpsd` input: an asyncio client of gpsd's JSON protocol (gpsd_json(5)); TPV and
SKY reports become messages, and each fix goes to the engine's position board."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import msgspec

from wireway.config.model import Interface, Pattern
from wireway.connectors.base import Input, InputContext
from wireway.connectors.durations import seconds
from wireway.connectors.gpsd.config import GpsdInputConfig
from wireway.connectors.hostport import parse_hostport
from wireway.envelope import Message, new_message_id
from wireway.observability import logging as log
from wireway.observability.metrics import INPUT_ERRORS
from wireway.processors.positions import Positions
from wireway.registry import register_input

logger = log.get("gpsd")

FIRST_RETRY = 1.0  # seconds before the first reconnection (then doubling up to max_backoff)
JITTER = 0.1  # +-10% on each wait, so several clients of one gpsd do not retry in step
BANNER_TIMEOUT = 10.0  # gpsd sends its VERSION at once; a silent peer is not gpsd
CONNECT_TIMEOUT = 10.0  # a host that drops packets would otherwise hold the attempt for minutes
MAX_LINE = 1 << 20  # a longer line is not a gpsd report: the connection is dropped
FIX_NAMES = {0: "no fix", 1: "no fix", 2: "2d", 3: "3d"}


def _number(report: dict[str, Any], key: str) -> float | None:
    value = report.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def tpv_payload(report: dict[str, Any]) -> dict[str, Any]:
    """A TPV report as the input's payload (absent values null)."""
    mode = report.get("mode")
    mode = mode if isinstance(mode, int) else 0
    hae = _number(report, "altHAE")
    msl = _number(report, "altMSL")
    if msl is None:
        msl = _number(report, "alt")
    return {
        "device": report.get("device"),
        "mode": mode,
        "fix": FIX_NAMES.get(mode, "no fix"),
        "time": report.get("time"),
        "lat": _number(report, "lat"),
        "lon": _number(report, "lon"),
        "alt_m": hae if hae is not None else msl,
        "alt_hae_m": hae,
        "alt_msl_m": msl,
        "speed_mps": _number(report, "speed"),
        "track_deg": _number(report, "track"),
        "climb_mps": _number(report, "climb"),
        "eph_m": _number(report, "eph"),
        "epv_m": _number(report, "epv"),
    }


def sky_payload(report: dict[str, Any]) -> dict[str, Any]:
    """A SKY report as the input's payload: satellite counts and dilutions of precision."""
    satellites = report.get("satellites")
    listed = satellites if isinstance(satellites, list) else None
    used = report.get("uSat")
    seen = report.get("nSat")
    if not isinstance(used, int) and listed is not None:
        used = sum(1 for s in listed if isinstance(s, dict) and s.get("used") is True)
    if not isinstance(seen, int) and listed is not None:
        seen = len(listed)
    return {
        "device": report.get("device"),
        "time": report.get("time"),
        "satellites_used": used if isinstance(used, int) else None,
        "satellites_seen": seen if isinstance(seen, int) else None,
        "hdop": _number(report, "hdop"),
        "vdop": _number(report, "vdop"),
        "pdop": _number(report, "pdop"),
    }


class GpsdError(Exception):
    """The peer did not answer as gpsd does."""


@register_input("gpsd", config=GpsdInputConfig)
class GpsdInput(Input):
    """Watch gpsd; reconnect with backoff; down while unreachable or silent."""

    config: GpsdInputConfig
    service_class = Positions

    def __init__(self, config: GpsdInputConfig, iface: Interface, pattern: Pattern) -> None:
        super().__init__(config, iface, pattern)
        self.host, self.port = parse_hostport(config.address)
        self.stale_after = seconds(config.stale_after, "stale_after")
        self.max_backoff = seconds(config.max_backoff, "max_backoff")
        self.reports = {name.upper() for name in config.reports}
        self.positions: Positions | None = None
        self.connected = False
        self.stale = False
        self.mode = 0  # of the last TPV
        self.last_tpv = 0.0  # loop time of the last TPV (or of the connection)
        self.tasks: list[asyncio.Task[None]] = []

    def use_service(self, service: Any) -> None:
        assert isinstance(service, Positions)
        self.positions = service

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.state = "connecting"
        self.tasks = [
            asyncio.create_task(self.run(), name=f"wireway[{self.name}].gpsd"),
            asyncio.create_task(self.watchdog(), name=f"wireway[{self.name}].watchdog"),
        ]

    async def stop(self) -> None:
        self.state = "stopped"
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []

    def health(self) -> dict[str, str]:
        if not self.tasks:
            return {}
        return {self.name: "up" if self.connected and not self.stale else "down"}

    def show_state(self) -> None:
        if not self.connected:
            self.state = "down"
        elif self.stale:
            self.state = "stale"
        else:
            self.state = "running" if self.mode >= 2 else "no fix"

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, limit=MAX_LINE), CONNECT_TIMEOUT
                )
            except OSError as exc:  # refused, unreachable, or TimeoutError
                if isinstance(exc, ConnectionRefusedError):
                    self.ctx.refused()
                why = exc.strerror or str(exc) or type(exc).__name__
                reason = f"cannot connect to gpsd at {self.config.address}: {why}"
            else:
                got_data = False
                try:
                    got_data = await self.session(reader, writer)
                    reason = "gpsd closed the connection"
                except Exception as exc:  # noqa: BLE001  (a reset, not gpsd, an ingest refused at shutdown)
                    reason = f"{type(exc).__name__}: {exc}"
                finally:
                    self.connected = False
                    writer.close()
                if got_data:
                    failures = 0  # a session that worked: the next attempt comes soon
            failures += 1
            INPUT_ERRORS.labels(self.pattern.name, self.name).inc()
            self.show_state()
            wait = min(self.max_backoff, FIRST_RETRY * 2 ** (failures - 1))
            wait *= 1 + random.uniform(-JITTER, JITTER)
            logger.warning("gpsd unavailable", input=self.name, reason=reason, retry_in=round(wait, 2))
            await asyncio.sleep(wait)

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One connection: banner, WATCH, then reports until EOF. True once a report came."""
        banner = await asyncio.wait_for(reader.readline(), BANNER_TIMEOUT)
        if not banner:
            raise GpsdError("closed before its VERSION banner")
        try:
            version = msgspec.json.decode(banner)
        except msgspec.DecodeError:
            raise GpsdError(f"not gpsd: {banner[:80]!r}") from None
        if not isinstance(version, dict) or version.get("class") != "VERSION":
            raise GpsdError(f"not gpsd: {banner[:80]!r}")
        watch: dict[str, Any] = {"enable": True, "json": True}
        if self.config.device is not None:
            watch["device"] = self.config.device
        writer.write(b"?WATCH=" + msgspec.json.encode(watch) + b"\n")
        await writer.drain()
        self.connected = True
        self.stale = False
        self.last_tpv = asyncio.get_running_loop().time()
        self.show_state()
        logger.info(
            "watching gpsd", input=self.name, address=self.config.address, release=version.get("release")
        )
        got_data = False
        pending = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return got_data
            got_data = True
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            if len(pending) > MAX_LINE:
                raise GpsdError("a line longer than 1 MiB")
            await self.take([line.rstrip(b"\r") for line in lines if line.strip()])

    async def take(self, lines: list[bytes]) -> None:
        """Turn the report lines of one read into messages and ingest them together."""
        values: list[Message] = []
        errors: list[tuple[Any, str]] = []
        for line in lines:
            try:
                report = msgspec.json.decode(line)
            except msgspec.DecodeError as exc:
                errors.append((line.decode(errors="replace"), f"gpsd: not JSON: {exc}"))
                continue
            if not isinstance(report, dict) or not isinstance(report.get("class"), str):
                errors.append((line.decode(errors="replace"), "gpsd: a report without a class"))
                continue
            kind = report["class"]
            if kind == "TPV":
                self.on_tpv(report)
            if kind not in self.reports:
                continue
            if kind == "TPV":
                payload = tpv_payload(report)
            elif kind == "SKY":
                payload = sky_payload(report)
            else:
                payload = {k: v for k, v in report.items() if k != "class"}
            values.append(
                Message(
                    message_id=new_message_id(),
                    timestamp="",
                    payload=payload,
                    source=self.name,
                    message_type=kind.lower(),
                )
            )
        if values or errors:
            await self.ctx.ingest(values, source=self.name, errors=errors)

    def on_tpv(self, report: dict[str, Any]) -> None:
        self.last_tpv = asyncio.get_running_loop().time()
        if self.stale:
            logger.info("gpsd reports again", input=self.name)
        self.stale = False
        mode = report.get("mode")
        mode = mode if isinstance(mode, int) else 0
        if (mode >= 2) != (self.mode >= 2):
            logger.info("fix" if mode >= 2 else "no fix", input=self.name, mode=mode)
        self.mode = mode
        lat, lon = _number(report, "lat"), _number(report, "lon")
        if mode >= 2 and lat is not None and lon is not None and self.positions is not None:
            alt = _number(report, "altHAE")
            if alt is None:
                alt = _number(report, "altMSL") if "altMSL" in report else _number(report, "alt")
            time = report.get("time")
            self.positions.publish(self.name, lat, lon, alt, time if isinstance(time, str) else None)
        self.show_state()

    async def watchdog(self) -> None:
        """Mark the input down when connected but no TPV came for `stale_after`."""
        loop = asyncio.get_running_loop()
        every = min(1.0, self.stale_after / 4)
        while True:
            await asyncio.sleep(every)
            if self.connected and not self.stale and loop.time() - self.last_tpv > self.stale_after:
                self.stale = True
                logger.warning("no TPV from gpsd", input=self.name, stale_after=self.stale_after)
                self.show_state()
