"""`track`: per device, pass a message when the device is new, moved, changed its signal
or is due for a refresh; drop the rest (outcome `unchanged`).

Over 400 lines: a step is one module (processors do not import one another),
and the device table, its state file and the refresh timer all read the same records."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from wireway.envelope import Message, new_message_id, now_rfc3339
from wireway.errors import ConfigError
from wireway.expr import Expr, ExpressionError
from wireway.expr_fast import Reader, light_context
from wireway.observability import logging as log
from wireway.observability.metrics import MESSAGES
from wireway.processors.base import Processor, StepResult
from wireway.processors.state import StateFile, claim_path, release_path, transaction
from wireway.registry import register_processor

logger = log.get("track")

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
WRITE_EVERY = 1.0  # seconds between writes of the state file
PENDING_LIMIT = 100_000  # passed messages waiting for their commit (a refused batch never comes)
REFRESH_CHUNK = 200  # refreshed messages published at once (bigger slices raise the peak RSS)
SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
  key TEXT PRIMARY KEY, seen REAL NOT NULL, passed REAL,
  lat REAL, lon REAL, rssi REAL, last BLOB
);
"""


Seconds = Annotated[float, Meta(gt=0)]


class TrackConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `track`.

    Follows devices by `key` (a CEL expression, e.g. `payload.mac`) and passes a
    device's message only when it says something new: the device was not seen before
    (or was forgotten), it moved more than `min_move_m` metres from where its last
    passed message put it (great-circle distance of `lat`/`lon`), its signal (`rssi`)
    differs by more than `min_rssi_change` dB from its last passed message, or its
    last passed message is `refresh_after` seconds old (set it below the stale time
    of what the message becomes, a TAK marker's `stale`, so the marker stays fresh).
    Every other message is dropped and counted (outcome `unchanged`); the input
    still acknowledges it. A position or signal that cannot be read, a latitude or
    longitude out of range, or a position of exactly (0, 0), is unknown (no fix) and
    changes nothing; with `drop_unfixed: true` a message without a known position
    is dropped instead (counted as outcome `no_fix`, its device not remembered), so
    no filter before `track` has to read the position again. A key that cannot be
    evaluated sends the message to the DLQ with the reason.

    A message counts as passed once it is in the outboxes (a refused batch is
    compared again when it comes back). At most `max_keys` devices are remembered,
    the least recently seen forgotten first; a device with no message for
    `forget_after` seconds is forgotten too (it is new when it comes back).

    With `refresh_emit: true` a timer also sends the last message of each device
    whose last passed message is `refresh_after` seconds old although no new message
    came (a stationary access point between scans), as long as the device is
    remembered: with a new id and the current time as `timestamp`, payload unchanged,
    counted as outcome `refreshed`. These go straight to the outputs (chosen by their
    `when:`), so put `track` after the steps that shape the message.

    With `persist: true` the devices are kept in the data folder
    (`state/<pattern>.track.db`, written about once a second), so a restart does not
    send every device again.
    """

    key: Annotated[str, Meta(description="CEL expression for the device (e.g. `payload.mac`)")]
    lat: Annotated[str | None, Meta(description="CEL expression for the latitude in degrees")] = None
    lon: Annotated[str | None, Meta(description="CEL expression for the longitude in degrees")] = None
    min_move_m: Annotated[float, Meta(ge=0, description="metres moved before passing again")] = 25.0
    rssi: Annotated[str | None, Meta(description="CEL expression for the signal in dBm")] = None
    min_rssi_change: Annotated[float, Meta(ge=0, description="dB of change before passing again")] = 10.0
    refresh_after: Annotated[Seconds | None, Meta(description="seconds before passing again anyway")] = 60.0
    refresh_emit: Annotated[bool, Meta(description="resend due devices' last messages on a timer")] = False
    forget_after: Annotated[Seconds | None, Meta(description="seconds without a message: forgotten")] = 600.0
    max_keys: Annotated[int, Meta(ge=1, description="devices remembered at most")] = 100_000
    persist: Annotated[bool, Meta(description="keep the devices in the data folder across restarts")] = False
    drop_unfixed: Annotated[bool, Meta(description="drop a message without a known position")] = False

    def __post_init__(self) -> None:
        if (self.lat is None) != (self.lon is None):
            raise ValueError(f"`lat` and `lon` go together - at `$.{'lon' if self.lon is None else 'lat'}`")
        if self.refresh_emit and self.refresh_after is None:
            raise ValueError("`refresh_emit` needs `refresh_after` - at `$.refresh_emit`")
        if self.drop_unfixed and self.lat is None:
            raise ValueError("`drop_unfixed` needs `lat` and `lon` - at `$.drop_unfixed`")
        if self.refresh_emit and (self.forget_after or math.inf) <= (self.refresh_after or 0):
            raise ValueError("`forget_after` must be longer than `refresh_after` - at `$.forget_after`")


class Device:
    """One device: when last seen and passed, its last passed position and signal, and
    its last message (packed by `Shrink`, for the timer's refresh)."""

    __slots__ = ("last", "lat", "lon", "passed", "rssi", "seen")

    def __init__(self, seen: float) -> None:
        self.seen = seen
        self.passed: float | None = None
        self.lat: float | None = None
        self.lon: float | None = None
        self.rssi: float | None = None
        self.last: bytes | None = None


Reference = tuple[float | None, float | None, float | None]  # lat, lon, rssi of a passed message


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _compile(source: str, key: str) -> Expr:
    try:
        return Expr(source)
    except ExpressionError as exc:
        raise ConfigError(str(exc), path=key) from exc


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Message).decode


class Shrink:
    """Keeps the devices' last messages small in memory: each one is deflated against
    a dictionary, the first message kept, which holds what they all share (field
    names, the log's metadata, most of the remarks). A raw deflate stream, a small
    window and a new compressor per message: each is read back on its own."""

    WBITS = -11  # raw deflate, a 2 KiB window: room for the dictionary and one message

    def __init__(self) -> None:
        self.zdict: bytes | None = None

    def pack(self, raw: bytes) -> bytes:
        if self.zdict is None:
            self.zdict = raw
        c = zlib.compressobj(1, zlib.DEFLATED, self.WBITS, 2, zdict=self.zdict)
        return c.compress(raw) + c.flush()

    def unpack(self, packed: bytes) -> bytes:
        assert self.zdict is not None
        d = zlib.decompressobj(self.WBITS, zdict=self.zdict)
        return d.decompress(packed) + d.flush()


Row = tuple[str, float, float | None, float | None, float | None, float | None, bytes | None]


def _save(conn: sqlite3.Connection, rows: list[Row], gone: list[tuple[str]]) -> None:
    transaction(
        conn,
        [
            ("INSERT OR REPLACE INTO devices VALUES (?, ?, ?, ?, ?, ?, ?)", rows),
            ("DELETE FROM devices WHERE key = ?", gone),
        ],
    )


def _load(conn: sqlite3.Connection, after: float, keep: int) -> list[Row]:
    rows = conn.execute(
        "SELECT key, seen, passed, lat, lon, rssi, last FROM devices"
        " WHERE seen > ? ORDER BY seen DESC LIMIT ?",
        (after, keep),
    ).fetchall()
    return [tuple(row) for row in reversed(rows)]


@register_processor("track", config=TrackConfig)
class Track(Processor):
    """Pass a device's message when it is new, moved, changed its signal or is due."""

    def __init__(self, config: TrackConfig, *, base_dir: Path) -> None:
        self.key = Reader(_compile(config.key, "key"))
        self.lat = Reader(_compile(config.lat, "lat")) if config.lat is not None else None
        self.lon = Reader(_compile(config.lon, "lon")) if config.lon is not None else None
        self.rssi = Reader(_compile(config.rssi, "rssi")) if config.rssi is not None else None
        self.min_move_m = config.min_move_m
        self.min_rssi_change = config.min_rssi_change
        self.refresh_after = config.refresh_after
        self.forget_after = config.forget_after
        self.max_keys = config.max_keys
        self.emit = config.refresh_emit
        self.persist = config.persist
        self.drop_unfixed = config.drop_unfixed
        # least recently seen first
        self.devices: OrderedDict[str, Device] = OrderedDict()
        # messages passed but not yet in the outboxes: message id -> (key, reference)
        self.pending: dict[str, tuple[str, Reference]] = {}
        # (passed time, key) in the order devices passed; an entry whose device passed
        # again since is skipped (refresh_emit only)
        self.due: deque[tuple[float, str]] = deque()
        self.dirty: set[str] = set()
        self.gone: set[str] = set()
        self.clock: Callable[[], float] = time.time
        self.next_expire = 0.0
        self.next_write = 0.0
        self.state: StateFile | None = None
        self.timer: asyncio.Task[None] | None = None
        self.shrink = Shrink()  # Device.last is packed by it

    @property
    def tracked(self) -> int:
        """Devices remembered now."""
        return len(self.devices)

    # ----- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Take back the remembered devices (`persist`) and start the refresh timer."""
        if self.persist:
            self.state = StateFile(claim_path(self.data_dir, self.pattern, "track"), SCHEMA)
            try:
                await self.state.open()
                after = self.clock() - self.forget_after if self.forget_after is not None else -math.inf
                rows = await self.state.run(_load, after, self.max_keys)
            except BaseException:
                await self.close_state()
                raise
            for key, seen, passed, lat, lon, rssi, last in rows:
                device = self.devices[key] = Device(seen)
                device.passed, device.lat, device.lon, device.rssi = passed, lat, lon, rssi
                device.last = self.shrink.pack(bytes(last)) if last is not None and self.emit else None
                if passed is not None and self.emit:
                    self.due.append((passed, key))
            if self.emit:  # the queue is ordered by the time each device passed
                self.due = deque(sorted(self.due))
        if self.emit:
            name = f"wireway[{self.pattern}/track].refresh"
            self.timer = asyncio.create_task(self.refresh_forever(), name=name)

    async def stop(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        self.write(force=True)
        await self.close_state()

    async def close_state(self) -> None:
        state, self.state = self.state, None
        if state is not None:
            try:
                await state.close()
            finally:
                release_path(state.path)

    # ----- messages --------------------------------------------------------------------
    async def process(self, batch: list[Message]) -> StepResult:
        now = self.clock()
        self.expire(now)
        passed: list[Message] = []
        failed: list[tuple[Message, list[str]]] = []
        fresh: dict[str, Reference] = {}  # references of keys passed earlier in this batch
        devices = self.devices
        read_key, drop_unfixed = self.key, self.drop_unfixed
        unfixed = 0
        for msg in batch:
            ctx = light_context(msg)
            ref = self.reference(ctx, msg)
            if ref[0] is None and drop_unfixed:  # as a filter before `track` would
                unfixed += 1
                continue
            try:
                key = str(read_key(ctx, msg.to_context))
            except Exception as exc:  # noqa: BLE001  (CEL evaluation error)
                failed.append((msg, [f"track: cannot evaluate key: {exc}"]))
                continue
            device = devices.get(key)
            if device is None:
                device = devices[key] = Device(now)
                if len(devices) > self.max_keys:
                    self.forget(devices.popitem(last=False)[0])
                changed = True
            else:
                devices.move_to_end(key)
                device.seen = now
                changed = self.changed(device, fresh.get(key), ref, now)
            if self.emit:
                device.last = self.shrink.pack(_encode(msg))
            if self.persist:
                self.dirty.add(key)
            if changed:
                fresh[key] = ref
                self.pending[msg.message_id] = (key, ref)
                passed.append(msg)
        while len(self.pending) > PENDING_LIMIT:  # a batch refused for backpressure never commits
            del self.pending[next(iter(self.pending))]
        dropped = len(batch) - len(passed) - len(failed) - unfixed
        if dropped:
            MESSAGES.labels(self.pattern or "-", "track", "unchanged").inc(dropped)
        if unfixed:
            MESSAGES.labels(self.pattern or "-", "track", "no_fix").inc(unfixed)
        return StepResult(passed, failed)

    def reference(self, ctx: dict[str, Any], msg: Message) -> Reference:
        """The message's position and signal (`ctx`: its `light_context`)."""
        lat = lon = rssi = None
        if self.lat is not None and self.lon is not None:
            try:
                lat, lon = _number(self.lat(ctx, msg.to_context)), _number(self.lon(ctx, msg.to_context))
            except Exception:  # noqa: BLE001  (no position: unknown)
                lat = lon = None
            # (0, 0) is what GPS tools (and Kismet) report without a fix
            if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or lat == lon == 0:
                lat = lon = None
        if self.rssi is not None:
            try:
                rssi = _number(self.rssi(ctx, msg.to_context))
            except Exception:  # noqa: BLE001  (no signal: unknown)
                rssi = None
        return lat, lon, rssi

    def changed(self, device: Device, fresh: Reference | None, ref: Reference, now: float) -> bool:
        """Whether a known device's message says something new."""
        if fresh is not None:  # passed earlier in this batch: compare with that one
            last = fresh
        elif device.passed is None:
            return True  # never passed (or not yet in the outboxes)
        else:
            if self.refresh_after is not None and now - device.passed >= self.refresh_after:
                return True
            last = device.lat, device.lon, device.rssi
        lat, lon, rssi = ref
        if lat is not None and lon is not None:
            if last[0] is None or last[1] is None:
                return True  # the first fix of a device
            if distance_m(last[0], last[1], lat, lon) > self.min_move_m:
                return True
        return rssi is not None and last[2] is not None and abs(rssi - last[2]) > self.min_rssi_change

    def committed(self, messages: list[Message]) -> None:
        """The passed messages are durable: they are the devices' new references."""
        now = self.clock()
        for msg in messages:
            found = self.pending.pop(msg.message_id, None)
            if found is None:
                continue
            key, (lat, lon, rssi) = found
            device = self.devices.get(key)
            if device is None:
                continue
            device.passed = now
            if lat is not None:
                device.lat, device.lon = lat, lon
            if rssi is not None:
                device.rssi = rssi
            if self.emit:
                self.due.append((now, key))
            if self.persist:
                self.dirty.add(key)
        self.write()

    def expire(self, now: float) -> None:
        """Forget devices not seen for `forget_after` (at most once a second)."""
        if self.forget_after is None or now < self.next_expire:
            return
        self.next_expire = now + 1.0
        old = now - self.forget_after
        devices = self.devices
        while devices:
            key, device = next(iter(devices.items()))
            if device.seen > old:
                return
            del devices[key]
            self.forget(key)

    def forget(self, key: str) -> None:
        """A device left memory: it leaves the state file too."""
        if self.persist:
            self.gone.add(key)
            self.dirty.discard(key)

    # ----- refresh timer ---------------------------------------------------------------
    async def refresh_forever(self) -> None:
        assert self.refresh_after is not None
        tick = min(1.0, self.refresh_after / 4)
        while True:
            await asyncio.sleep(tick)
            await self.refresh_due()

    def take_due(self, now: float) -> list[tuple[float, str, Device]]:
        """The devices whose last passed message is `refresh_after` old, off the queue."""
        assert self.refresh_after is not None
        limit = now - self.refresh_after
        due = self.due
        taken: list[tuple[float, str, Device]] = []
        while due and due[0][0] <= limit and len(taken) < REFRESH_CHUNK:
            at, key = due.popleft()
            device = self.devices.get(key)
            if device is None or device.passed != at or device.last is None:
                continue  # forgotten, passed again since, or nothing to resend
            taken.append((at, key, device))
        return taken

    async def refresh_due(self) -> None:
        """Publish the last message of every device due for a refresh."""
        now = self.clock()
        self.expire(now)
        while self.publish is not None:
            taken = self.take_due(now)
            if not taken:
                return
            stamp = now_rfc3339()
            out = []
            for _, _, device in taken:
                msg = _decode(self.shrink.unpack(device.last))  # type: ignore[arg-type]
                msg.message_id, msg.timestamp = new_message_id(), stamp
                out.append(msg)
            try:
                await self.publish(out)
            except BaseException as exc:  # outbox full or closing: the next tick tries again
                self.due.extendleft(reversed([(at, key) for at, key, _ in taken]))
                if not isinstance(exc, Exception):
                    raise  # cancelled
                logger.warning("could not publish refreshed devices", pattern=self.pattern, error=str(exc))
                return
            MESSAGES.labels(self.pattern or "-", "track", "refreshed").inc(len(out))
            for _, key, device in taken:
                device.passed = now
                self.due.append((now, key))
                if self.persist:
                    self.dirty.add(key)
            self.write()

    # ----- state file ------------------------------------------------------------------
    def write(self, *, force: bool = False) -> None:
        """Write the changed devices to the state file (at most once a second)."""
        if self.state is None or not (self.dirty or self.gone):
            return
        now = self.clock()
        if not force and now < self.next_write:
            return
        self.next_write = now + WRITE_EVERY
        devices = self.devices
        rows: list[Row] = []
        for key in self.dirty:
            d = devices.get(key)
            if d is not None:
                last = self.shrink.unpack(d.last) if d.last is not None else None
                rows.append((key, d.seen, d.passed, d.lat, d.lon, d.rssi, last))
        gone = [(key,) for key in self.gone]
        self.dirty, self.gone = set(), set()
        self.state.submit(_save, rows, gone)
