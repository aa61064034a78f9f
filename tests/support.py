"""Test servers and helpers: a real HTTP sink and an engine started from YAML text."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from conftest import free_port, wireway
from wireway.config import load_pattern
from wireway.runtime.engine import Engine


class Sink:
    """A real HTTP server on loopback whose answers a test scripts.

    `statuses` is consumed one per request (then `default`); every request body
    that got a 2xx is kept in `received`.
    """

    def __init__(self, default: int = 200) -> None:
        self.default = default
        self.statuses: list[int] = []
        self.received: list[Any] = []
        self.requests = 0
        self.in_flight = 0
        self.most_in_flight = 0  # the most requests it was answering at once
        self.delay = 0.0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with sink.lock:
                    sink.requests += 1
                    sink.in_flight += 1
                    sink.most_in_flight = max(sink.most_in_flight, sink.in_flight)
                    status = sink.statuses.pop(0) if sink.statuses else sink.default
                if sink.delay:
                    threading.Event().wait(sink.delay)
                with sink.lock:
                    sink.in_flight -= 1
                if 200 <= status < 300:
                    with sink.lock:
                        sink.received.append(json.loads(body))
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@asynccontextmanager
async def engine_from(tmp: Path, text: str) -> AsyncIterator[Engine]:
    """Start an engine for one pattern file written from `text`; stop it afterwards."""
    path = tmp / "pattern.yaml"
    path.write_text(text)
    pattern, errors = load_pattern(path)
    assert not errors, [str(e) for e in errors]
    assert pattern is not None
    engine = Engine([pattern], data_dir=tmp / "data", http=("127.0.0.1", free_port()))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.shutdown()


def base_url(engine: Engine) -> str:
    host, port = engine.http
    return f"http://{host}:{port}"


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> None:
    """Wait until `check()` is truthy (bounded in time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if check():
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        await asyncio.sleep(interval)


def check_fails_at(text: str, tmp: Path, line: int, key: str) -> None:
    """`wireway check` on the pattern `text` exits 1, without a traceback, naming `key`
    on line `line` of the file."""
    path = tmp / "bad.yaml"
    path.write_text(text)
    result = wireway("check", str(path))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert any(f"bad.yaml:{line} " in row and f".{key}" in row for row in output.splitlines()), output


def written_lines(path: Path) -> list[Any]:
    """The JSON lines a file output has written so far; a line still being written (no
    newline yet) is left for the next look."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return [json.loads(x) for x in data[: data.rfind(b"\n") + 1].splitlines()]
