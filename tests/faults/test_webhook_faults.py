"""A webhook (`http_client` output) that lets requests time out for a while, then
answers 500, then recovers: every reading answered 202 reaches it. A request that timed
out may still have been taken by the server, so duplicates are counted (the server
gets the batch again), never refused. Quick: stays in `make test`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fault_harness import HttpLoad, Wireway, assert_none_lost, record, wait_delivered

PATTERN = """
pattern: {{name: webhook-faults, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - {{type: http_client, address: "{url}", batch: json_array, payload_only: true, timeout: 1}}
settings: {{buffer: durable, batch_size: 200, retries: 100, backoff_max: 0.5, breaker_timeout: 0.5}}
"""


class Webhook:
    """A test-owned HTTP server whose behaviour the test switches: ok, 500, hang."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.arrived: Counter[int] = Counter()
        self.answers: Counter[str] = Counter()
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                mode = hook.mode
                with hook.lock:
                    hook.answers[mode] += 1
                if mode == "500":
                    self._answer(500)
                    return
                if mode == "hang":
                    # taken, but answered after the client gave up: it sends it again
                    time.sleep(1.5)
                with hook.lock:
                    hook.arrived.update(item["seq"] for item in json.loads(body))
                self._answer(200)

            def _answer(self, status: int) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client hung up (timed out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seqs(self) -> Counter[int]:
        with self.lock:
            return Counter(self.arrived)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.faults
def test_webhook_500s_and_timeouts_then_recovers(tmp_path: Path) -> None:
    hook = Webhook()
    inst = Wireway(tmp_path, PATTERN.format(url=hook.url))
    inst.start()
    load = HttpLoad(f"{inst.url}/ingest", workers=2, pause=0.02).start()
    try:
        load.wait_acked(500)
        hook.mode = "hang"  # first, while the breaker is closed: batches in flight time out
        time.sleep(4)
        hook.mode = "500"
        time.sleep(4)
        hook.mode = "ok"
        mark = load.issued
        before = load.acked.snapshot()
        _, recovery = wait_delivered(hook.seqs, before, beyond=mark, timeout=60)
        acked = load.stop()
        seen, _ = wait_delivered(hook.seqs, acked)
    finally:
        load.stop()
        inst.stop()
        hook.close()
    record(
        "webhook_500_timeouts",
        "Webhook (http_client) timing out for 4 s, then answering 500 for 4 s",
        acked,
        seen,
        recovery,
        duplicates_note="batches taken after the client timed out, sent again",
        answers=dict(hook.answers),
    )
    assert hook.answers["500"], hook.answers
    assert hook.answers["hang"], hook.answers
    assert_none_lost(acked, seen)
