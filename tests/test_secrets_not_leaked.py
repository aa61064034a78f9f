"""No configured secret appears in anything a real run writes or answers.

A `wireway run` subprocess with the sensor application on PostgreSQL (a password in
its DSN), an admin key, a static key of `security.api_keys`, a JWT secret, a signed
alert webhook and a signed webhook input whose messages go to an output that
refuses them (to the DLQ), through a URL carrying a password. The test sends good
and bad traffic: wrong keys (one a near miss of the admin key), bad and forged
tokens, the JWT secret itself as a bearer token, bad signatures, broken JSON,
invalid readings, alerts. Then it reads everything: stdout and stderr, every HTTP
answer, /status, /metrics, /openapi.json, `wireway dlq list/show`, every file under
the data folder (byte for byte, the SQLite buffer and DLQ too) and the rows of the
PostgreSQL schema, and looks for each secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from conftest import free_port, need_service, wait_http, wireway
from wireway.apps import builtin_path

PG = "postgresql://postgres@127.0.0.1:5432/test"
HOOK_PATTERN = """
pattern: {name: hooks, type: port-mapping, version: "1.0"}
interfaces:
  input:
    - type: webhook
      address: /hooks/in
      style: generic
      secret: "${HOOK_SECRET}"
  output:
    - type: http_client
      name: refusing
      address: "${REFUSING_URL}"
      hmac: {secret: "${OUT_SECRET}"}
settings: {retries: 1}
"""


class Refusing(BaseHTTPRequestHandler):
    """Answers every POST 400 (its messages go to the DLQ) and keeps what it got."""

    seen: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        Refusing.seen.append(str(self.headers).encode() + body)
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "refused on purpose"}')

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def refusing() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def schema() -> Iterator[str]:
    need_service("postgresql", 5432)
    import asyncio

    name = f"ww_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE SCHEMA {name}"))
    try:
        yield name
    finally:
        asyncio.run(run(f"DROP SCHEMA {name} CASCADE"))


def sign(secret: str, body: bytes, ts: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()


def test_no_secret_in_logs_answers_metrics_or_dlq(tmp_path: Path, refusing: int, schema: str) -> None:
    found = {
        "admin key": "adm-" + secrets.token_urlsafe(24),
        "static API key": "static-" + secrets.token_urlsafe(24),
        "JWT secret": "jwt-" + secrets.token_urlsafe(40),
        "webhook secret": "hook-" + secrets.token_urlsafe(24),
        "outgoing signing secret": "out-" + secrets.token_urlsafe(24),
        "alert webhook secret": "alert-" + secrets.token_urlsafe(24),
        "DSN password": "pgpw-" + secrets.token_urlsafe(18),
        "URL password": "urlpw-" + secrets.token_urlsafe(18),
    }
    patterns = tmp_path / "patterns"
    patterns.mkdir()
    text = (builtin_path() / "sensors.yaml").read_text()
    text = text.replace("retries: 10,", "retries: 1,")
    text = text.replace(
        "  max_body_bytes: 1048576", '  max_body_bytes: 1048576\n  api_keys: ["${STATIC_KEY}"]'
    )
    (patterns / "sensors.yaml").write_text(text)
    (patterns / "hooks.yaml").write_text(HOOK_PATTERN)
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "WIREWAY_ADMIN_KEY": found["admin key"],
        "STATIC_KEY": found["static API key"],
        "WIREWAY_JWT_SECRET": found["JWT secret"],
        "HOOK_SECRET": found["webhook secret"],
        "OUT_SECRET": found["outgoing signing secret"],
        "WIREWAY_ALERT_WEBHOOK_ENABLED": "true",
        "WIREWAY_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{refusing}/alerts",
        "WIREWAY_ALERT_WEBHOOK_SECRET": found["alert webhook secret"],
        "REFUSING_URL": f"http://hooks:{found['URL password']}@127.0.0.1:{refusing}/hook",
        "WIREWAY_STORAGE": f"postgresql://postgres:{found['DSN password']}@127.0.0.1:5432/test?search_path={schema}",
        "WIREWAY_SCHEMA": schema,
        "WIREWAY_MQTT_ENABLED": "false",
        "WIREWAY_LOG_LEVEL": "DEBUG",
    }
    env.pop("WIREWAY_CONFIG", None)
    out, err = (tmp_path / "stdout.txt").open("wb"), (tmp_path / "stderr.txt").open("wb")
    args = [sys.executable, "-m", "wireway", "run", str(patterns), "--http", f"127.0.0.1:{port}"]
    proc = subprocess.Popen([*args, "--data-dir", str(data)], stdout=out, stderr=err, env=env)
    answers: list[bytes] = []
    try:
        wait_http(url + "/health", timeout=30)
        answers += drive(url, found)
        for path in ("/status", "/metrics", "/openapi.json", "/health", "/ready", "/services"):
            answers.append(httpx.get(url + path, trust_env=False).content)
            answers.append(
                httpx.get(url + path, headers={"X-API-Key": found["admin key"]}, trust_env=False).content
            )
        wait_dead_letters(data, env)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            out.close()
            err.close()
    dlq = wireway("dlq", "list", "--data-dir", str(data), env={**env, "COLUMNS": "400"})
    assert dlq.returncode == 0, dlq.stderr
    shown = b""
    for line in dlq.stdout.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if line.startswith("│") and cells:  # a row: the message id first
            shown += wireway("dlq", "show", cells[0], "--data-dir", str(data), env=env).stdout.encode()
    assert shown, "the refused webhook messages are in the DLQ"
    everything = {
        "stdout": (tmp_path / "stdout.txt").read_bytes(),
        "stderr": (tmp_path / "stderr.txt").read_bytes(),
        "HTTP answers": b"\n".join(answers),
        "dlq list/show": dlq.stdout.encode() + dlq.stderr.encode() + shown,
        "what the refusing server got": b"\n".join(Refusing.seen),
    }
    everything["PostgreSQL tables"] = dump_schema(schema)
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        everything[f"data file {path.relative_to(data)}"] = path.read_bytes()
    assert any(b"refused on purpose" in v for v in everything.values()), "the DLQ reasons were read"
    leaks = [
        f"{name} in {where}"
        for name, secret in found.items()
        for where, content in everything.items()
        if secret.encode() in content
    ]
    assert not leaks, leaks


def dump_schema(schema: str) -> bytes:
    """Every row of every table of the test's schema, as text (keys, devices, alerts, readings)."""
    import asyncio

    async def dump() -> bytes:
        conn = await asyncpg.connect(PG)
        try:
            names = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
            assert names, "the application's tables are in the schema"
            rows = [await conn.fetch(f'SELECT * FROM {schema}."{n["tablename"]}"') for n in names]
            return repr(rows).encode()
        finally:
            await conn.close()

    return asyncio.run(dump())


def drive(url: str, found: dict[str, str]) -> list[bytes]:
    """Good and bad traffic; returns every answer's headers and body."""
    admin = {"X-API-Key": found["admin key"]}
    reading = {
        "device_id": "esp32-s",
        "timestamp": "2025-10-16T18:33:58Z",
        "sensors": {"pir": {"motion_detected": True}},
    }
    gas = {
        **reading,
        "timestamp": "2025-10-16T18:34:00Z",
        "sensors": {"mq134": {"gas_concentration": 900, "unit": "ppm"}},
    }
    forged = jwt.encode({"sub": "esp32-s"}, "not-the-secret-" + "x" * 32, algorithm="HS256")
    good_jwt = jwt.encode(
        {"sub": "esp32-s", "exp": int(time.time()) + 60}, found["JWT secret"], algorithm="HS256"
    )
    attempts: list[tuple[str, dict[str, str], bytes]] = [
        ("/api/v1/sensor-data", admin, json.dumps(reading).encode()),
        ("/api/v1/sensor-data", admin, json.dumps(gas).encode()),
        ("/api/v1/sensor-data/batch", {"X-API-Key": found["static API key"]}, json.dumps([reading]).encode()),
        ("/api/v1/sensor-data", {"X-API-Key": found["admin key"] + "x"}, json.dumps(reading).encode()),
        ("/api/v1/sensor-data", {"X-API-Key": found["admin key"][:-1]}, json.dumps(reading).encode()),
        (
            "/api/v1/sensor-data",
            {"Authorization": f"Bearer {found['JWT secret']}"},
            json.dumps(reading).encode(),
        ),
        ("/api/v1/sensor-data", {"Authorization": f"Bearer {forged}"}, json.dumps(reading).encode()),
        (
            "/api/v1/sensor-data",
            {"Authorization": f"Bearer {good_jwt}"},
            b'{"device_id": "esp32-s", "timestamp": 5}',
        ),
        ("/api/v1/sensor-data", admin, b'{"device_id": '),
        ("/api/v1/sensor-data/batch", admin, b'[{"device_id": "x"}]'),
        ("/api/v1/alerts/nope/ack", {"Authorization": f"Bearer {good_jwt}"}, b""),
        (
            "/hooks/in",
            {"X-Wireway-Signature": "sha256=00", "X-Wireway-Timestamp": str(int(time.time()))},
            b"{}",
        ),
    ]
    for i in range(3):
        body = json.dumps({"n": i}).encode()
        ts = str(int(time.time()))
        headers = {"X-Wireway-Signature": sign(found["webhook secret"], body, ts), "X-Wireway-Timestamp": ts}
        attempts.append(("/hooks/in", headers, body))
    stale = str(int(time.time()) - 3600)
    attempts.append(
        (
            "/hooks/in",
            {
                "X-Wireway-Signature": sign(found["webhook secret"], b"{}", stale),
                "X-Wireway-Timestamp": stale,
            },
            b"{}",
        )
    )
    answers: list[bytes] = []
    statuses: list[int] = []
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as c:
        for path, headers, body in attempts:
            r = c.post(path, content=body, headers={"content-type": "application/json", **headers})
            answers.append(str(r.headers).encode() + r.content)
            statuses.append(r.status_code)
        # the traffic did what it was meant to: accepted, refused, invalid
        assert statuses[:4] == [202, 202, 202, 401], statuses
        assert statuses[5:8] == [401, 401, 400], statuses
        assert statuses[-5:] == [401, 202, 202, 202, 401], statuses
        for path in ("/api/v1/devices", "/api/v1/alerts", "/api/v1/queue/status"):
            answers.append(c.get(path, headers=admin).content)
            answers.append(c.get(path, headers={"X-API-Key": found["JWT secret"]}).content)
    return answers


def wait_dead_letters(data: Path, env: dict[str, str]) -> None:
    """Until the refused webhook messages are dead letters (bounded)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = wireway("dlq", "list", "--data-dir", str(data), env=env)
        if listed.returncode == 0 and "hooks" in listed.stdout:
            return
        time.sleep(0.5)
    raise AssertionError("no dead letter of the hooks pattern within 30 s")
