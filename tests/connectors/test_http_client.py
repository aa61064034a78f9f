"""The http_client output against a real HTTP server: the HMAC signature in its three
styles, the timestamp and message-id headers, methods, header templates, Retry-After
and batches as one JSON array."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from conftest import free_port
from support import base_url, engine_from, eventually
from wireway.config import load_pattern
from wireway.connectors.http_client.headers import retry_after


class Receiver:
    """A real HTTP server that keeps every request's headers (lower-case) and raw body,
    and the method and arrival time (monotonic) in `seen`. `answers` scripts the
    status and headers of the next answers (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.seen: list[tuple[str, float]] = []
        self.walls: list[float] = []  # the same arrivals in wall-clock time
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.seen.append((self.command, time.monotonic()))
                    receiver.walls.append(time.time())
                    status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            do_PUT = do_PATCH = do_POST

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
    """HMAC-SHA256 with the secret (read through `${VAR}`) over `<timestamp>.<raw body>`
    by default, as `sha256=<hex>`; the sending time and the message id in their own headers."""
    monkeypatch.setenv("TEST_HOOK_SECRET", "s3cret")
    signing = ', hmac: {secret: "${TEST_HOOK_SECRET}"}'
    async with engine_from(tmp_path, pattern(receiver, signing)) as engine:
        r = await post(engine, {"n": 1})
        assert r.status_code == 202
        (message_id,) = r.json()["ids"]
        await eventually(lambda: len(receiver.requests) == 1)
    ((headers, body),) = receiver.requests
    assert json.loads(body) == {"n": 1}
    signed = headers["x-wireway-timestamp"].encode() + b"." + body
    expected = "sha256=" + hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-wireway-signature"], expected)
    assert headers["x-wireway-timestamp"].isdigit()
    assert headers["x-wireway-message-id"] == message_id


async def test_header_names_are_options_and_no_secret_means_unsigned(
    tmp_path: Path, receiver: Receiver
) -> None:
    """`signature_header` / `timestamp_header` rename the headers; an empty secret signs nothing."""
    signing = ', hmac: {secret: "k", style: body, signature_header: X-Sig, timestamp_header: X-Time}'
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


def output_pattern(receiver: Receiver, options: str, settings: str = "") -> str:
    return f"""
pattern: {{name: out}}
interfaces:
  input:
    - {{type: http, address: /in}}
  output:
    - {{type: http_client, address: "{receiver.url}", {options}}}
{settings}
"""


async def test_generic_and_github_styles(tmp_path: Path, receiver: Receiver) -> None:
    """`style: generic` signs `<timestamp>.<body>`; `style: github` signs the body in
    X-Hub-Signature-256 and names the delivery after the message id."""
    (tmp_path / "generic").mkdir()
    (tmp_path / "github").mkdir()
    options = "payload_only: true, hmac: {secret: k, style: generic}"
    async with engine_from(tmp_path / "generic", output_pattern(receiver, options)) as engine:
        assert (await post(engine, {"n": 1})).status_code == 202
        await eventually(lambda: len(receiver.requests) == 1)
    headers, body = receiver.requests[0]
    stamp = headers["x-wireway-timestamp"]
    signed = stamp.encode() + b"." + body
    assert headers["x-wireway-signature"] == "sha256=" + hmac.new(b"k", signed, hashlib.sha256).hexdigest()
    assert abs(int(stamp) - time.time()) < 60
    (tmp_path / "key").write_text("from-file\n")
    options = "payload_only: true, hmac: {secret_file: ../key, style: github}"
    async with engine_from(tmp_path / "github", output_pattern(receiver, options)) as engine:
        r = await post(engine, {"n": 2})
        assert r.status_code == 202
        await eventually(lambda: len(receiver.requests) == 2)
    headers, body = receiver.requests[1]
    expected = "sha256=" + hmac.new(b"from-file", body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature-256"] == expected
    assert headers["x-github-delivery"] == r.json()["ids"][0]
    assert "x-wireway-signature" not in headers
    assert "x-wireway-timestamp" not in headers


async def test_method_and_header_templates(tmp_path: Path, receiver: Receiver) -> None:
    """`method: PATCH`; header values filled from each message; a message lacking a
    templated field goes to the DLQ with the reason, the others are sent."""
    options = (
        'method: PATCH, headers: {X-Device: "dev-{payload.device_id}", X-Id: "{messageId}", '
        'X-Kind: "{messageType}", X-Static: plain}'
    )
    async with engine_from(tmp_path, output_pattern(receiver, options)) as engine:
        with capture_logs() as logged:
            r = await post(engine, [{"device_id": "esp32-7"}, {"other": 1}])
            assert r.status_code == 202
            good_id, bad_id = r.json()["ids"]
            await eventually(lambda: len(receiver.requests) == 1)
            runner = engine.runners[0]
            await eventually(lambda: runner.store.dlq_depth(runner.name) == 1)
    (headers, _), ((method, _),) = receiver.requests[0], receiver.seen
    assert method == "PATCH"
    assert headers["x-device"] == "dev-esp32-7"
    assert headers["x-id"] == good_id == headers["x-wireway-message-id"]
    assert headers["x-kind"] == "data"
    assert headers["x-static"] == "plain"
    (letter,) = [line for line in logged if line["event"] == "dead-lettered"]
    assert letter["message_id"] == bad_id
    assert letter["reason"] == "header template: the message has no payload.device_id"


async def test_retry_after_is_honoured(tmp_path: Path, receiver: Receiver) -> None:
    """A 429 with `Retry-After: 1`, then a 503 with an HTTP date: each next attempt comes
    at least that late, although the pattern's own backoff is a few milliseconds."""
    receiver.answers = [(429, {"Retry-After": "1"})]
    settings = "settings: {backoff_base: 0.01, backoff_max: 0.02, retries: 5}"
    async with engine_from(tmp_path, output_pattern(receiver, "payload_only: true", settings)) as engine:
        assert (await post(engine, {"n": 1})).status_code == 202
        await eventually(lambda: len(receiver.seen) == 2)
        first, second = (at for _, at in receiver.seen)
        assert second - first >= 1.0
        until = int(time.time()) + 3  # HTTP dates have whole seconds
        receiver.answers = [(503, {"Retry-After": email.utils.formatdate(until, usegmt=True)})]
        assert (await post(engine, {"n": 2})).status_code == 202
        await eventually(lambda: len(receiver.seen) == 4)
    assert receiver.walls[3] >= until - 0.05  # not before the date (clocks read apart)
    assert [json.loads(body) for _, body in receiver.requests] == [{"n": 1}, {"n": 1}, {"n": 2}, {"n": 2}]


async def test_json_array_batches(tmp_path: Path, receiver: Receiver) -> None:
    """`batch: json_array` sends one request per batch with a JSON array body, even with
    `format: jsonl`; `method: PUT`."""
    options = "batch: json_array, format: jsonl, payload_only: true, method: PUT, batch_size: 50, linger: 0.2"
    async with engine_from(tmp_path, output_pattern(receiver, options)) as engine:
        assert (await post(engine, [{"n": i} for i in range(120)])).status_code == 202

        def values() -> list[Any]:
            return [v for _, body in receiver.requests for v in json.loads(body)]

        await eventually(lambda: len(values()) == 120)
    assert sorted(v["n"] for v in values()) == list(range(120))
    assert all(h["content-type"] == "application/json" for h, _ in receiver.requests)
    assert 3 <= len(receiver.requests) < 120
    assert {method for method, _ in receiver.seen} == {"PUT"}


def test_a_template_field_must_be_a_message_field(tmp_path: Path) -> None:
    """`wireway check` names the header whose placeholder is no message field."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "pattern: {name: bad}\ninterfaces:\n  input:\n    - {type: http, address: /in}\n  output:\n"
        "    - {type: http_client, address: 'http://127.0.0.1:9/x', headers: {X-A: '{device}'}}\n"
    )
    loaded, errors = load_pattern(path)
    assert loaded is None
    assert any("headers.X-A" in str(e) and "bad.yaml:6" in str(e) for e in errors), [str(e) for e in errors]


def test_retry_after_values() -> None:
    """Delta seconds, an HTTP date (GMT, or an offset), nothing or garbage."""
    now = 1_700_000_000.0
    assert retry_after("7", now) == 7.0
    assert retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == 30.0
    assert retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    assert retry_after("Tue, 14 Nov 2023 22:13:50 -0000", now) == 30.0
    assert retry_after(None, now) is None
    assert retry_after("", now) is None
    assert retry_after("later", now) is None
