"""`python`: call user code, `module:function`, sync or async."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from wireway.envelope import Message
from wireway.errors import ConfigError
from wireway.processors.base import Processor, StepResult
from wireway.registry import register_processor


class PythonConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `python` (or the shorthand `- python: "mymod:enrich"`).

    The function takes the envelope as a dict (wire names) and returns a dict
    (the new envelope, or just a new payload when it has no `payload` key),
    None to drop the message, or a list of them to split it. Raising sends the
    message to the DLQ with the exception as reason.
    """

    __shorthand__: ClassVar[str] = "function"
    function: str


@register_processor("python", config=PythonConfig)
class Python(Processor):
    """Run a user function on each message."""

    def __init__(self, config: PythonConfig, *, base_dir: Path) -> None:
        module_name, _, attr = config.function.partition(":")
        if not module_name or not attr:
            raise ConfigError("expected `module:function`", path="function")
        if str(base_dir) not in sys.path:
            sys.path.insert(0, str(base_dir))  # modules beside the pattern file
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"cannot import {module_name}: {exc}", path="function") from exc
        func = getattr(module, attr, None)
        if not callable(func):
            raise ConfigError(f"{module_name} has no function {attr}", path="function")
        self.func: Callable[[dict[str, Any]], Any] = func
        self.is_async = inspect.iscoroutinefunction(func)

    async def process(self, batch: list[Message]) -> StepResult:
        passed: list[Message] = []
        failed: list[tuple[Message, list[str]]] = []
        for msg in batch:
            ctx = msg.to_context()
            try:
                result = self.func(ctx)
                if self.is_async or inspect.isawaitable(result):
                    result = await result
                for item in result if isinstance(result, list) else [result]:
                    if item is None:
                        continue
                    if isinstance(item, dict) and "payload" in item:
                        passed.append(msgspec.convert({**ctx, **item}, Message))
                    else:
                        passed.append(msgspec.structs.replace(msg, payload=item))
            except Exception as exc:  # noqa: BLE001
                failed.append((msg, [f"python {type(exc).__name__}: {exc}"]))
        return StepResult(passed, failed)
