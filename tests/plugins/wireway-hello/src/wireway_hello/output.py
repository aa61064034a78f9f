"""The `hello` output: one greeting line per message, appended to a file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from wireway.connectors.base import Output
from wireway.envelope import Message
from wireway.registry import register_output


class HelloOutputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Append `<greeting>, <payload.name>!` per message to a file."""

    address: Annotated[str, Meta(description="file the greetings are appended to")]
    greeting: Annotated[str, Meta(description="the word before the name")] = "Hello"


@register_output("hello", config=HelloOutputConfig)
class HelloOutput(Output):
    """Greet every message's `name`, one line each."""

    config: HelloOutputConfig

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        lines = "".join(f"{self.config.greeting}, {msg.payload.get('name', 'nobody')}!\n" for msg in batch)
        await asyncio.to_thread(self._append, lines)
        return None

    def _append(self, lines: str) -> None:
        with Path(self.config.address).open("a") as file:
            file.write(lines)
