"""The contracts between connectors and the runtime."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from wireway.envelope import Message
from wireway.processors.base import AppService, Component, EngineView

__all__ = [
    "AppService",
    "EngineView",
    "IngestResult",
    "Input",
    "InputContext",
    "Output",
    "Rejected",
]

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from wireway.config.model import Interface, Pattern


@dataclass
class Rejected:
    """One value an input handed in that was not accepted, with why."""

    index: int
    reasons: list[str]
    value: Any = None
    message: Message | None = None


@dataclass
class IngestResult:
    """What happened to the values of one `ingest` call."""

    accepted: list[Message] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    filtered: int = 0
    dead_lettered: int = 0


Ingest = Callable[..., Awaitable[IngestResult]]


@dataclass
class InputContext:
    """What the runtime gives an input when it starts.

    `ingest(values, reject_invalid=False, wait=True)` runs the values through the
    pattern and returns once every accepted message is in its outboxes (durable):
    only then may the input acknowledge upstream. With `reject_invalid=True`
    (request/response inputs) nothing is kept if any value is invalid and the
    reasons come back in `rejected`; with `keep_valid=True` as well, the valid ones
    are kept all the same (a batch answered per item); otherwise invalid values go
    to the DLQ.
    With `wait=False` a full buffer raises `BackpressureError` instead of waiting.
    `full()` says, cheaply, that such a call may be refused now (an output's queue is
    full): a request/response input answers 503 before decoding a body it would likely
    have to refuse anyway (under
    overload, clients retrying every few ms would otherwise spend the time the
    outputs need to drain the buffers on decoding and checking what is refused).
    An input that resumes where it stopped (a file tail) passes
    `ingest(..., position=(key, value))`: the value is committed with the messages,
    and `position(key)` gives it back at the next start (None the first time).
    An input that has reached the end of what it reads (stdin at EOF, a command
    that is not restarted) calls `finished()` once, after its last `ingest` returned:
    when every input of every pattern has finished, the engine stops as on SIGTERM
    (delivering what is queued, for up to `settings.timeout`).
    """

    ingest: Ingest
    add_routes: Callable[[list[BaseRoute]], None]
    connection_opened: Callable[[str], None]
    connection_closed: Callable[[str], None]
    full: Callable[[], bool] = lambda: False
    position: Callable[[str], bytes | None] = lambda key: None
    finished: Callable[[], None] = lambda: None
    # the input's peer refused its connection: a service of the deployment that runs
    # that peer may be restarted for it (`on_failure: {refused: restart NAME}`)
    refused: Callable[[], None] = lambda: None


class Input(Component):
    """Base class of inputs: `start` begins reading, `stop` ends it."""

    # True for an input that stores read positions (`InputContext.position`): the
    # engine then keeps a durable store even for patterns with `buffer: memory`
    keeps_position: ClassVar[bool] = False
    # the `format:` values it can read (None: any registered format, through
    # `iface.new_codec()`); wireway checks a pattern's choice against it
    formats: ClassVar[tuple[str, ...] | None] = ("json", "jsonl")
    default_format: ClassVar[str] = "json"  # without a `format:` key

    def __init__(self, config: Any, iface: Interface, pattern: Pattern) -> None:
        self.config = config
        self.iface = iface
        self.pattern = pattern
        self.name = iface.name
        self.state = "stopped"

    async def start(self, ctx: InputContext) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        self.state = "stopped"

    def health(self) -> dict[str, str]:
        return {}


class Output(Component):
    """Base class of outputs: `write` returns when the batch is confirmed.

    It may return {index: reason} for single messages refused for good; it raises
    `RetryableError` (or any exception) to retry the whole batch and
    `PermanentError` to dead-letter it.
    """

    # the `format:` values it can write (None: any, through `iface.new_codec()`)
    formats: ClassVar[tuple[str, ...] | None] = ("json", "jsonl")
    default_format: ClassVar[str] = "json"  # without a `format:` key

    def __init__(self, config: Any, iface: Interface, pattern: Pattern) -> None:
        self.config = config
        self.iface = iface
        self.pattern = pattern
        self.name = iface.name

    async def open(self) -> None:
        return None

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        raise NotImplementedError

    @property
    def listening(self) -> bool:
        """False while a write would go nowhere (a live stream with no clients): the
        runtime then counts the messages as delivered without queueing them."""
        return True

    async def close(self) -> None:
        return None

    def health(self) -> dict[str, str]:
        return {}
