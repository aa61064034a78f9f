"""A real HTTP server on loopback serving items after a cursor, for the http_poll tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from conftest import free_port


class Feed:
    """Serves `items` (dicts with an `id`) as `{"items": [...]}`.

    GET /items?after=N&limit=L: the items whose id is above N (all without `after`),
    at most L of them. POST /search with a JSON body `{"after": N}`: a bare JSON array
    of the same. `delay` holds each answer back; `statuses` is consumed one per request (then 200); every request is
    recorded as (method, path with query, headers, body, monotonic time).
    """

    def __init__(self, items: list[dict[str, Any]] | None = None, port: int | None = None) -> None:
        self.items: list[dict[str, Any]] = list(items or [])
        self.statuses: list[int] = []
        self.delay = 0.0  # seconds each answer waits (a slow server)
        self.requests: list[tuple[str, str, dict[str, str], bytes, float]] = []
        self.lock = threading.Lock()
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                after = int(query["after"][0]) if "after" in query else None
                limit = int(query["limit"][0]) if "limit" in query else None
                self.answer(b"", lambda page: {"items": page}, after, limit)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                after = json.loads(body).get("after") if body else None
                self.answer(body, lambda page: page, after, None)

            def answer(self, body: bytes, shape: Any, after: int | None, limit: int | None) -> None:
                with feed.lock:
                    feed.requests.append(
                        (self.command, self.path, dict(self.headers), body, time.monotonic())
                    )
                    status = feed.statuses.pop(0) if feed.statuses else 200
                    page = [i for i in feed.items if after is None or i["id"] > after][:limit]
                if feed.delay:
                    threading.Event().wait(feed.delay)
                data = json.dumps(shape(page) if status == 200 else {"error": "scripted"}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = port or free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.items.extend(items)

    def paths(self) -> list[str]:
        with self.lock:
            return [r[1] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
