"""`fieldkit_control`: brings the field kit's control API into a pattern (its messages
pass unchanged)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wireway.apps.fieldkit.control.api import control_app
from wireway.apps.fieldkit.control.options import ControlOptions
from wireway.apps.fieldkit.control.service import KitControl
from wireway.envelope import Message
from wireway.processors.base import Processor, StepResult
from wireway.registry import register_processor


@register_processor("fieldkit_control", config=ControlOptions)
class FieldkitControl(Processor):
    """The control API's options, handed to the engine's `KitControl` service."""

    service_class = KitControl

    def __init__(self, config: ControlOptions, *, base_dir: Path) -> None:
        self.config = config

    def use_service(self, service: Any) -> None:
        if isinstance(service, KitControl):
            service.configure(self.config)
            service.asgi = control_app

    async def process(self, batch: list[Message]) -> StepResult:
        return StepResult(passed=batch)
