"""`filter`: keep only messages for which a CEL condition is true."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import msgspec

from wireway.envelope import Message
from wireway.errors import ConfigError
from wireway.expr import Expr, ExpressionError
from wireway.processors.base import Processor, StepResult
from wireway.registry import register_processor


class FilterConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `filter` (or the shorthand `- filter: "payload.temp > 0"`)."""

    __shorthand__: ClassVar[str] = "when"
    when: str
    on_error: str = "drop"  # "drop" or "dlq": what to do when the condition cannot be evaluated


@register_processor("filter", config=FilterConfig)
class Filter(Processor):
    """Keep a message when `when` is true; drop it otherwise."""

    def __init__(self, config: FilterConfig, *, base_dir: Path) -> None:
        if config.on_error not in ("drop", "dlq"):
            raise ConfigError("expected drop or dlq", path="on_error")
        try:
            self.expr = Expr(config.when)
        except ExpressionError as exc:
            raise ConfigError(str(exc), path="when") from exc
        self.to_dlq = config.on_error == "dlq"

    async def process(self, batch: list[Message]) -> StepResult:
        passed: list[Message] = []
        failed: list[tuple[Message, list[str]]] = []
        for msg in batch:
            try:
                keep = self.expr.evaluate(msg.to_context()) is True
            except Exception as exc:  # noqa: BLE001
                if self.to_dlq:
                    failed.append((msg, [f"filter: cannot evaluate {self.expr.source!r}: {exc}"]))
                continue
            if keep:
                passed.append(msg)
        return StepResult(passed, failed)
