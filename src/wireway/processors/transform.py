"""`transform`: set, rename and drop envelope fields with CEL mappings."""

from __future__ import annotations

from pathlib import Path

import msgspec

from wireway.envelope import Message
from wireway.errors import ConfigError
from wireway.expr import VARIABLES, Expr, ExpressionError
from wireway.processors import pop_path, set_path
from wireway.processors.base import Processor, StepResult
from wireway.registry import register_processor


class TransformConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `transform`: `set` maps a dotted path to a CEL expression."""

    set: dict[str, str] = {}
    rename: dict[str, str] = {}
    drop: list[str] = []


def _check_path(path: str, key: str) -> None:
    root = path.split(".", 1)[0]
    if root not in VARIABLES:
        raise ConfigError(f"path must start with one of {', '.join(VARIABLES)}", path=key)


@register_processor("transform", config=TransformConfig)
class Transform(Processor):
    """Evaluate every `set` against the incoming message, then rename, then drop."""

    def __init__(self, config: TransformConfig, *, base_dir: Path) -> None:
        self.sets: list[tuple[str, Expr]] = []
        for path, source in config.set.items():
            _check_path(path, f"set.{path}")
            try:
                self.sets.append((path, Expr(source)))
            except ExpressionError as exc:
                raise ConfigError(str(exc), path=f"set.{path}") from exc
        for old, new in config.rename.items():
            _check_path(old, f"rename.{old}")
            _check_path(new, f"rename.{old}")
        for i, path in enumerate(config.drop):
            _check_path(path, f"drop[{i}]")
        self.rename = config.rename
        self.drop = config.drop

    async def process(self, batch: list[Message]) -> StepResult:
        passed: list[Message] = []
        failed: list[tuple[Message, list[str]]] = []
        for msg in batch:
            ctx = msg.to_context()
            try:
                values = [(path, expr.evaluate(ctx)) for path, expr in self.sets]
            except Exception as exc:  # noqa: BLE001
                failed.append((msg, [f"transform: {exc}"]))
                continue
            if not isinstance(ctx.get("payload"), dict) and any(p.startswith("payload.") for p, _ in values):
                ctx["payload"] = {"value": ctx.get("payload")}
            for path, value in values:
                set_path(ctx, path, value)
            for old, new in self.rename.items():
                found, value = pop_path(ctx, old)
                if found:
                    set_path(ctx, new, value)
            for path in self.drop:
                pop_path(ctx, path)
            try:
                passed.append(msgspec.convert(ctx, Message))
            except msgspec.ValidationError as exc:
                failed.append((msg, [f"transform: result is not a valid envelope: {exc}"]))
        return StepResult(passed, failed)
