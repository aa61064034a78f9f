"""The contract of a processing step, and what an application's components share.

A step is built at load time from its options Struct (so `wireway check` sees its
errors) and answers `await process(batch)` with a `StepResult`:

- `passed`: the messages that go on to the next step (then to the outputs);
- `failed`: each refused message with its reasons (one string per broken rule):
  the sender is told, or the message goes to the DLQ;
- `emitted`: new messages the step creates (an alert, an occupancy change). They
  skip the remaining steps, are routed with the outputs' `when:` and enter the
  outboxes in the same commit as the batch that caused them.

A message in none of `passed` and `failed` was filtered out on purpose.

An application is a service object (`AppService`) that the engine builds once per
engine for every class its components name in `service_class`, and hands to each
of them with `use_service`. The service sees the engine only through `EngineView`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from wireway.envelope import Message
from wireway.observability.events import Events
from wireway.supervision import ServiceControl

if TYPE_CHECKING:
    from starlette.routing import BaseRoute


@dataclass(slots=True)
class StepResult:
    """What one step made of a batch (see the module docstring)."""

    passed: list[Message]
    failed: list[tuple[Message, list[str]]] = field(default_factory=list)
    emitted: list[Message] = field(default_factory=list)


ServiceT = TypeVar("ServiceT", bound="AppService")


@dataclass(frozen=True)
class EngineView:
    """The part of the engine an application may see and use.

    Attributes:
        data_dir: the engine's data folder (its default place for files).
        http_address: (host, port) of the process's HTTP server.
        queue_depth: messages waiting in the outboxes of the application's patterns.
        dlq_depth: messages in the DLQ of the application's patterns.
        publish: route the messages with the outputs' `when:` and put them in the
            outboxes of the application's patterns; returns once they are durable.
            For messages no reading caused: an alert acknowledged through the API,
            an occupancy hold running out.
        events: the engine's notifications (rejections, deliveries) to listen to.
        app_services: the engine's application services by class (see `service`).
        services: the processes the deployment runs beside its patterns (its
            `services:` section), None when it declares none (see supervision.py).
    """

    data_dir: Path
    http_address: tuple[str, int]
    queue_depth: Callable[[], int]
    dlq_depth: Callable[[], int]
    publish: Callable[[list[Message]], Awaitable[None]]
    events: Events = field(default_factory=Events)
    app_services: Mapping[type[AppService], AppService] = field(default_factory=dict)
    services: ServiceControl | None = None

    def service(self, cls: type[ServiceT]) -> ServiceT | None:
        """The engine's instance of `cls` (e.g. the live hubs of its websocket outputs),
        None when none of its components needs one."""
        found = self.app_services.get(cls)
        return found if isinstance(found, cls) else None


class AppService:
    """An application's state, shared by its components (one instance per engine).

    The engine starts it after building every component (so each could configure
    it in `use_service`) and before any output opens, adds its HTTP routes to the
    process's server, merges its `health()` into /health and stops it after every
    output has closed.
    """

    name = "service"

    def __init__(self, view: EngineView) -> None:
        self.view = view

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def routes(self) -> list[BaseRoute]:
        return []

    def health(self) -> dict[str, str]:
        """Component name -> "up" or "down"; any "down" makes /health `degraded`."""
        return {}

    def holding_back(self) -> str | None:
        """Why the service refuses messages for now (makes /ready false), or None."""
        return None


class Component:
    """What steps, inputs and outputs share: an optional application service, and the
    engine's data folder (set by the engine before anything starts)."""

    # the application service class this component needs (None: none)
    service_class: ClassVar[type[AppService] | None] = None
    data_dir = Path("data")

    def use_service(self, service: Any) -> None:
        """Receive the engine's instance of `service_class` before anything starts."""
        return


class Processor(Component):
    """Base class of steps."""

    pattern = ""  # the pattern's name, set by the loader (for metrics and events)
    events: Events | None = None  # the engine's, set by the pattern runner that runs the step
    # set by the pattern runner: route messages the step makes on its own time (a
    # window closing on a timer) to the outputs and into the outboxes, as `emitted`
    publish: Callable[[list[Message]], Awaitable[None]] | None = None

    async def start(self) -> None:
        """Called once before any input starts (open state files, start timers)."""
        return

    async def stop(self) -> None:
        """Called after the inputs have stopped and before the outputs close (a last
        `publish` is still delivered)."""
        return

    async def process(self, batch: list[Message]) -> StepResult:
        raise NotImplementedError

    def committed(self, messages: list[Message]) -> None:
        """Called once the messages that passed every step are durable in the outboxes."""
        return
