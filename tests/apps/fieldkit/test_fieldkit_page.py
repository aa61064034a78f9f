"""The operator page in headless Chromium (Debian's `chromium`), driven over the DevTools
protocol: it loads from the kit alone (no CDN), and its broadcast button changes the state
the API reports."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kit_support import fieldkit
from websockets.asyncio.client import ClientConnection, connect

from support import eventually

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def need_chromium() -> str:
    """Skip (or, in CI, fail) when Debian's chromium is not installed."""
    if CHROMIUM is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


class Page:
    """One tab, over the DevTools protocol."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self.ids)
        await self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        async with asyncio.timeout(10):
            while True:
                reply = json.loads(await self.ws.recv())
                if reply.get("id") == n:
                    assert "error" not in reply, reply
                    return reply["result"]  # type: ignore[no-any-return]

    async def js(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


@contextlib.asynccontextmanager
async def chromium(tmp: Path) -> AsyncIterator[Page]:
    binary = need_chromium()
    profile = tmp / "profile"
    proc = await asyncio.create_subprocess_exec(
        *[
            binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
            "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
            "--remote-debugging-port=0", "about:blank",
        ],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        active = profile / "DevToolsActivePort"
        await eventually(lambda: active.exists() and len(active.read_text().split()) >= 2, timeout=30)
        port = active.read_text().split()[0]
        async with httpx.AsyncClient(trust_env=False) as client:
            targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
        url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with connect(url, max_size=None) as ws:
            yield Page(ws)
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)


async def until(page: Page, expression: str, expected: Any, timeout: float = 10) -> None:
    value = None
    for _ in range(int(timeout / 0.1)):
        value = await page.js(expression)
        if value == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{expression} is {value!r}, expected {expected!r}")


async def test_the_broadcast_button_stops_and_starts_the_broadcast(tmp_path: Path) -> None:
    need_chromium()
    async with fieldkit(tmp_path) as kit, chromium(tmp_path) as page:
        (kit.wigle / "Kismet-20261204-10-00-00-1.wiglecsv").write_text("")
        (kit.wigle / "Kismet-20261204-11-00-00-1.wiglecsv").write_text("")
        await page.call("Page.navigate", url=kit.api + "/")
        state = "document.getElementById('broadcast-state').textContent"
        await until(page, state, "on")
        await page.js("document.getElementById('broadcast-toggle').click()")
        await until(page, state, "off")
        assert (await kit.status())["broadcasting"] is False
        await page.js("document.getElementById('broadcast-toggle').click()")
        await until(page, state, "on")
        status = await kit.status()
        assert status["broadcasting"] is True
        assert status["filename"] == "Kismet-20261204-11-00-00-1.wiglecsv"  # the newest
        # the live counts and the file list come from the kit
        await until(page, "document.getElementById('rows').textContent", "0")
        await page.js("document.getElementById('list').click()")
        await until(page, "document.querySelectorAll('#files li').length", 2)
