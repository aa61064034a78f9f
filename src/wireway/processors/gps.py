"""`gps`: attach the kit's last position fix (from a `gpsd` or `mavlink` input of the
same engine) to messages, as their position when they have none, or beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from wireway.envelope import Message
from wireway.errors import ConfigError
from wireway.expr import Expr, ExpressionError
from wireway.observability.metrics import MESSAGES
from wireway.processors.base import Processor, StepResult
from wireway.processors.positions import Fix, Positions
from wireway.registry import register_processor

MISSING = object()


class GpsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `gps`.

    Attaches the newest position fix of the engine's position board to each message:
    the fix of the `gpsd` or `mavlink` input named `source`, or without `source` the
    newest fix of any of them (the inputs may be in other pattern files of the same
    `wireway run`).

    With `fill: true` a message without a position gets the fix as its own: the
    payload fields `lat`, `lon` and `alt` (paths inside the payload, default `lat`,
    `lon`, `alt_m`) are set when latitude and longitude are both missing, null or 0;
    a message with a position of its own keeps it. With `beside` (default `gps`), the
    fix is also put at that payload path as `{lat, lon, alt, time, age_s, source}`:
    `time` is the receiver's time of the fix, `age_s` the seconds since it arrived;
    `beside: null` leaves that out.

    A fix older than `max_age` seconds is not attached (the kit has lost its
    position), nor is anything when there is no fix yet; such messages pass
    unchanged and are counted (`wireway_messages_total{component="gps"}`, outcome
    `stale_fix` or `no_fix`). With `when`, a CEL condition, only the messages for
    which it is true get a fix (e.g. `messageType != "tpv"`: not the positions
    themselves); the others pass unchanged. A payload that is not an object passes
    unchanged.
    """

    source: Annotated[
        str | None, Meta(description="the input whose fix is used (default: the newest of any)")
    ] = None
    max_age: Annotated[float, Meta(gt=0, description="seconds: an older fix is not attached")] = 30.0
    fill: Annotated[bool, Meta(description="set the position fields of messages without one")] = True
    lat: Annotated[str, Meta(description="payload path of the latitude")] = "lat"
    lon: Annotated[str, Meta(description="payload path of the longitude")] = "lon"
    alt: Annotated[str | None, Meta(description="payload path of the altitude (null: none)")] = "alt_m"
    beside: Annotated[
        str | None, Meta(description="payload path of {lat, lon, alt, time, age_s, source} (null: none)")
    ] = "gps"
    when: Annotated[str | None, Meta(description="CEL: only these messages get a fix")] = None

    def __post_init__(self) -> None:
        if not self.fill and self.beside is None:
            raise ValueError("nothing to attach: set `fill: true` or a `beside` path - at `$.beside`")
        for key in ("lat", "lon", "alt", "beside"):
            path = getattr(self, key)
            if path is not None and (not path or any(not part for part in path.split("."))):
                raise ValueError(f"expected a dotted path inside the payload, e.g. gps - at `$.{key}`")


def _get(payload: dict[str, Any], path: str) -> Any:
    node: Any = payload
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def _put(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of the payload with `path` set (the objects on the way copied, the
    message's own payload left as it was)."""
    *parents, last = path.split(".")
    root = dict(payload)
    node = root
    for key in parents:
        child = node.get(key)
        child = dict(child) if isinstance(child, dict) else {}
        node[key] = child
        node = child
    node[last] = value
    return root


def _unset(value: Any) -> bool:
    return value is MISSING or value is None or value == 0


@register_processor("gps", config=GpsConfig)
class Gps(Processor):
    """Attach the last fix of the engine's position board to messages."""

    service_class = Positions

    def __init__(self, config: GpsConfig, *, base_dir: Path) -> None:
        self.config = config
        self.when: Expr | None = None
        if config.when is not None:
            try:
                self.when = Expr(config.when)
            except ExpressionError as exc:
                raise ConfigError(str(exc), path="when") from exc
        self.positions: Positions | None = None

    def use_service(self, service: Any) -> None:
        assert isinstance(service, Positions)
        self.positions = service

    async def process(self, batch: list[Message]) -> StepResult:
        board = self.positions
        fix = board.latest(self.config.source) if board is not None else None
        if fix is None:
            self.count("no_fix", sum(1 for msg in batch if self.wanted(msg)))
            return StepResult(batch)
        assert board is not None
        age = board.age(fix)
        if age > self.config.max_age:
            self.count("stale_fix", sum(1 for msg in batch if self.wanted(msg)))
            return StepResult(batch)
        return StepResult([self.attach(msg, fix, age) if self.wanted(msg) else msg for msg in batch])

    def wanted(self, msg: Message) -> bool:
        if not isinstance(msg.payload, dict):
            return False
        return self.when is None or self.when.test(msg.to_context())

    def count(self, outcome: str, n: int) -> None:
        if n:
            MESSAGES.labels(self.pattern or "-", "gps", outcome).inc(n)

    def attach(self, msg: Message, fix: Fix, age: float) -> Message:
        cfg = self.config
        payload: dict[str, Any] = msg.payload
        if cfg.fill and _unset(_get(payload, cfg.lat)) and _unset(_get(payload, cfg.lon)):
            payload = _put(payload, cfg.lat, fix.lat)
            payload = _put(payload, cfg.lon, fix.lon)
            if cfg.alt is not None and fix.alt is not None and _unset(_get(payload, cfg.alt)):
                payload = _put(payload, cfg.alt, fix.alt)
        if cfg.beside is not None:
            beside = {
                "lat": fix.lat,
                "lon": fix.lon,
                "alt": fix.alt,
                "time": fix.time,
                "age_s": round(age, 3),
                "source": fix.source,
            }
            payload = _put(payload, cfg.beside, beside)
        return msgspec.structs.replace(msg, payload=payload)
