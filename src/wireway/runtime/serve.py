"""Running an engine as the `wireway run` process does: until a signal, telling the
person at the console where to look."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from wireway.config.model import Pattern
from wireway.runtime.engine import Engine
from wireway.web.server import scheme, tls_files


async def serve(
    patterns: list[Pattern],
    *,
    alongside: Callable[[Engine], Coroutine[Any, Any, None]] | None = None,
    **kwargs: Any,
) -> None:
    """Start an engine and run it until SIGTERM/SIGINT.

    `alongside(engine)`, when given, runs as a task from start to stop and is
    cancelled first thing at shutdown (the CLI's `--simulate` demo).
    """
    tls_files(patterns)  # a certificate that does not load stops the start before anything opens
    engine = Engine(patterns, **kwargs)
    await engine.start()
    where_to_look(engine)
    task: asyncio.Task[None] | None = None
    if alongside is not None:
        task = asyncio.create_task(alongside(engine), name="wireway[serve].alongside")
        engine.on_stop.append(task.cancel)
    try:
        await engine.run_until_stopped()
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def where_to_look(engine: Engine) -> None:
    """Tell a person at the console where to look."""
    host, port = engine.http
    base = f"{scheme(engine.patterns)}://{host}:{port}"
    paths = ["/status", "/health", "/metrics"]
    found = [str(getattr(r, "path", "")) for r in engine.routes]
    paths += [p for p in found if p.startswith(("/api", "/ws"))]
    lines = [f"  {base}{p}" for p in dict.fromkeys(paths) if "{" not in p]
    note = ""
    if any(getattr(getattr(s, "keys", None), "enabled", False) for s in engine.services):
        note = "\nAPI calls need a key: the admin key printed at first start, or WIREWAY_ADMIN_KEY."
    print("wireway is running. Look at:\n" + "\n".join(lines) + note, flush=True)
