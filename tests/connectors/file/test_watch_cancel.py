"""A reader waiting for changes stops when cancelled, even as a change comes in.

On Python 3.11 `asyncio.wait_for` drops a cancel that arrives as the awaited event is
set; a file input's stop then waited for ever. Waits on events use `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

from wireway.connectors.file.watch import Watcher

SRC = Path(__file__).resolve().parents[3] / "src" / "wireway"


async def test_a_cancel_that_comes_with_a_change_stops_the_reader(tmp_path: Path) -> None:
    watcher = Watcher(str(tmp_path / "*.log"), "t", poll_interval=1.0, linger=0.005)

    async def reader() -> None:
        while True:
            await watcher.wait(1.0)

    for _ in range(50):
        task = asyncio.create_task(reader())
        await asyncio.sleep(0.001)
        watcher.changed.set()
        await asyncio.sleep(0)  # the waiter is woken ...
        task.cancel()  # ... as the cancel comes
        async with asyncio.timeout(2):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def test_no_event_wait_goes_through_wait_for() -> None:
    pattern = re.compile(r"asyncio\.wait_for\([\w.\[\]]+\.wait\(\)")
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, f"use asyncio.timeout around event.wait() instead: {found}"
