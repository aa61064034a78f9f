"""What the engine does for its services: build the supervisor (its pattern services
start and stop the inputs of their pattern), note the inputs that produced a message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.routing import BaseRoute

from wireway.connectors.base import IngestResult
from wireway.runtime.services.routes import service_routes
from wireway.runtime.services.supervisor import Supervisor


def build_supervisor(engine: Any) -> Supervisor | None:
    """The engine's supervisor, None when no pattern declares services."""
    services = [s for p in engine.patterns for s in p.services]
    if not services:
        return None

    def runner(name: str) -> Any:
        return next(r for r in engine.runners if r.name == name)

    async def start_pattern(name: str) -> None:
        await runner(name).start_inputs(engine.input_context)

    async def stop_pattern(name: str) -> None:
        if engine.accepting:  # at shutdown the engine has stopped the inputs already
            await runner(name).stop_inputs()

    return Supervisor(services, engine.data_dir, start_pattern=start_pattern, stop_pattern=stop_pattern)


async def open_services(supervisor: Supervisor | None, routes: list[BaseRoute]) -> set[str]:
    """Start the services (each waits for what it depends on), add their HTTP routes;
    returns the patterns run as services (the supervisor starts their inputs)."""
    if supervisor is None:
        return set()
    await supervisor.open()
    routes.extend(service_routes(supervisor))
    return {u.opts.pattern for u in supervisor.units.values() if u.opts.pattern}


def watch_ingest(supervisor: Supervisor | None, ingest: Any, pattern: str) -> Any:
    """`ingest`, telling the supervisor which input produced a message (for
    `ready: {input: ...}`: the input's name, and `<pattern>.<name>` for one named
    without its pattern); unchanged when no probe waits for one."""
    units = supervisor.units.values() if supervisor is not None else []
    if supervisor is None or not any(u.opts.ready is not None and u.opts.ready.input for u in units):
        return ingest

    async def watched(values: list[Any], *, source: str, **options: Any) -> IngestResult:
        result: IngestResult = await ingest(values, source=source, **options)
        if result.accepted:
            supervisor.saw(source)
            supervisor.saw(f"{pattern}.{source}")
        return result

    return watched


def refused_hook(supervisor: Supervisor | None, name: str, pattern: str) -> Callable[[], None]:
    """What an input calls when its peer refuses its connection: the supervisor's
    `on_failure: {refused: ...}` for that input (by its name, or `<pattern>.<name>`)."""
    if supervisor is None:
        return lambda: None

    def refused() -> None:
        supervisor.report_refused(name)
        if not name.startswith(pattern + "."):
            supervisor.report_refused(f"{pattern}.{name}")

    return refused
