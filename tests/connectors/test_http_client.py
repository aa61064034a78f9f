"""The http_client output against a real HTTP server: the HMAC signature, the timestamp
and message-id headers."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import free_port
from support import base_url, engine_from, eventually


class Receiver:
    """A real HTTP server that keeps every request's headers (lower-case) and raw body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


def pattern(receiver: Receiver, signing: str) -> str:
    return f"""
pattern: {{name: signed}}
interfaces:
  input:
    - {{type: http, address: /in}}
  output:
    - {{type: http_client, address: "{receiver.url}", payload_only: true{signing}}}
"""


async def post(engine: object, body: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as c:  # type: ignore[arg-type]
        return await c.post("/in", json=body)


async def test_the_receiver_can_verify_the_signature(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HMAC-SHA256 with the secret (read through `${VAR}`) over the raw body, as
    `sha256=<hex>`; the sending time and the message id in their own headers."""
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    signing = ', hmac: {secret: "${TEST_HOOK_SECRET}"}'
    async with engine_from(tmp_path, pattern(receiver, signing)) as engine:
        r = await post(engine, {"n": 1})
        assert r.status_code == 202
        (message_id,) = r.json()["ids"]
        await eventually(lambda: len(receiver.requests) == 1)
    ((headers, body),) = receiver.requests
    assert json.loads(body) == {"n": 1}
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-wireway-signature"], expected)
    assert headers["x-wireway-timestamp"].isdigit()
    assert headers["x-wireway-message-id"] == message_id


async def test_header_names_are_options_and_no_secret_means_unsigned(
    tmp_path: Path, receiver: Receiver
) -> None:
    """`signature_header` / `timestamp_header` rename the headers; an empty secret signs nothing."""
    signing = ', hmac: {secret: "k", signature_header: X-Sig, timestamp_header: X-Time}'
    (tmp_path / "named").mkdir()
    (tmp_path / "unsigned").mkdir()
    async with engine_from(tmp_path / "named", pattern(receiver, signing)) as engine:
        assert (await post(engine, {"n": 2})).status_code == 202
        await eventually(lambda: len(receiver.requests) == 1)
    headers, body = receiver.requests[0]
    assert headers["x-sig"] == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert headers["x-time"].isdigit()
    assert "x-wireway-signature" not in headers
    async with engine_from(tmp_path / "unsigned", pattern(receiver, ', hmac: {secret: ""}')) as engine:
        assert (await post(engine, {"n": 3})).status_code == 202
        await eventually(lambda: len(receiver.requests) == 2)
    headers, _ = receiver.requests[1]
    assert "x-wireway-signature" not in headers
    assert "x-wireway-timestamp" not in headers
