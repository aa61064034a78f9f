"""`split`: one message into one message per element of an array."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta

from wireway.envelope import Message, MessageType, Metadata, stable_id
from wireway.errors import ConfigError
from wireway.expr import Expr, ExpressionError
from wireway.processors.base import Processor, StepResult
from wireway.registry import register_processor


class SplitConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `split` (or the shorthand `- split: payload.readings`).

    Each element of the array `path` gives one message whose payload is the element.
    Its `messageId` is derived from the parent's id and the element's index, so a
    redelivered parent splits into the same ids (an idempotent output, or `dedupe`,
    recognises them); its `metadata.correlationId` is the parent's id. The rest of
    the envelope (timestamp, source, priority, ttl) is the parent's. The new messages
    go on through the next steps in place of the parent; an empty array leaves
    nothing.
    """

    __shorthand__: ClassVar[str] = "path"
    path: Annotated[str, Meta(description="CEL expression for the array to split")] = "payload"
    message_type: Annotated[
        MessageType | None, Meta(description="messageType of the new messages (default: the parent's)")
    ] = None
    on_error: Annotated[
        Literal["dlq", "drop", "pass"],
        Meta(
            description="when `path` cannot be evaluated or is not an array: `dlq` (failed with "
            "the reason), `drop`, or `pass` (the message goes on whole)"
        ),
    ] = "dlq"


@register_processor("split", config=SplitConfig)
class Split(Processor):
    """Replace each message with one message per element of an array."""

    def __init__(self, config: SplitConfig, *, base_dir: Path) -> None:
        try:
            self.expr = Expr(config.path)
        except ExpressionError as exc:
            raise ConfigError(str(exc), path="path") from exc
        self.whole = config.path == "payload"
        self.message_type = config.message_type
        self.on_error = config.on_error

    def children(self, parent: Message, items: list[object]) -> list[Message]:
        meta = parent.metadata
        parent_id = parent.message_id
        kind = self.message_type or parent.message_type
        return [
            Message(
                message_id=stable_id(parent_id, i),
                timestamp=parent.timestamp,
                payload=item,
                source=parent.source,
                destination=parent.destination,
                message_type=kind,
                version=parent.version,
                metadata=Metadata(
                    priority=meta.priority,
                    ttl=meta.ttl,
                    retry_count=meta.retry_count,
                    correlation_id=parent_id,
                ),
            )
            for i, item in enumerate(items)
        ]

    async def process(self, batch: list[Message]) -> StepResult:
        passed: list[Message] = []
        failed: list[tuple[Message, list[str]]] = []
        for msg in batch:
            try:
                items = msg.payload if self.whole else self.expr.evaluate(msg.to_context())
            except Exception as exc:  # noqa: BLE001  (CEL evaluation error)
                reason = f"split: cannot evaluate {self.expr.source!r}: {exc}"
            else:
                if isinstance(items, list):
                    passed += self.children(msg, items)
                    continue
                reason = f"split: {self.expr.source!r} is not an array (got {type(items).__name__})"
            if self.on_error == "dlq":
                failed.append((msg, [reason]))
            elif self.on_error == "pass":
                passed.append(msg)
        return StepResult(passed, failed)
