"""The webhook input over real HTTP: GitHub's signature and delivery ids, the generic
timestamped form and its replay window, secrets being replaced, what a refused
request leaves behind (nothing, a count and a log line)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from conftest import free_port
from support import base_url, engine_from, eventually, written_lines
from wireway.config import load_pattern
from wireway.envelope import stable_id
from wireway.observability.metrics import REGISTRY
from wireway.runtime.engine import Engine


def pattern(tmp: Path, options: str, name: str = "hooks", security: str = "") -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {{type: webhook, address: /hooks/in, {options}}}
  output:
    - {{type: file, address: "{tmp / "out.jsonl"}"}}
{security}
"""


def kept(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "out.jsonl"
    return written_lines(path)


def github_sig(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def generic_sig(secret: str, body: bytes, timestamp: str) -> str:
    text = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


def unauthorized(pattern_name: str) -> float:
    labels = {"pattern": pattern_name, "component": f"{pattern_name}.webhook", "outcome": "unauthorized"}
    return REGISTRY.get_sample_value("wireway_messages_total", labels) or 0.0


async def post(engine: Engine, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
        return await client.post("/hooks/in", content=body, headers=headers)


async def test_github_signature_ok_bad_and_missing(tmp_path: Path) -> None:
    """A good signature is kept under an id made from the delivery id, with the event as
    its messageType; a wrong or missing one is 401, counted and logged, nothing kept."""
    name = f"gh-{uuid.uuid4().hex[:8]}"
    body = b'{"ref": "refs/heads/main", "after": "abc"}'
    delivery = str(uuid.uuid4())
    good = {"X-Hub-Signature-256": github_sig("s3cret", body), "X-GitHub-Event": "push"}
    async with engine_from(tmp_path, pattern(tmp_path, "secret: s3cret", name)) as engine:
        with capture_logs() as logged:
            wrong = await post(engine, body, {**good, "X-Hub-Signature-256": github_sig("other", body)})
            missing = await post(engine, body, {"X-GitHub-Event": "push"})
            tampered = await post(engine, body + b" ", good)
        assert [wrong.status_code, missing.status_code, tampered.status_code] == [401, 401, 401]
        assert wrong.json() == {"error": "invalid signature"}
        assert "missing signature" in missing.json()["error"]
        assert unauthorized(name) == 3
        refused = [line for line in logged if line["event"] == "webhook refused"]
        assert [line["reason"] for line in refused] == [
            "invalid signature",
            "missing signature (X-Hub-Signature-256)",
            "invalid signature",
        ]
        assert engine.runners[0].routes[0].queue.depth == 0
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
            described = (await client.get("/openapi.json")).json()["paths"]["/hooks/in"]["post"]
        assert {p["name"] for p in described["parameters"]} == {"X-Hub-Signature-256", "X-GitHub-Delivery"}
        assert set(described["responses"]) == {"200", "202", "400", "401", "413", "503"}
        ok = await post(engine, body, {**good, "X-GitHub-Delivery": delivery})
        assert ok.status_code == 202, ok.text
        assert ok.json() == {"accepted": 1, "ids": [stable_id("webhook", delivery, 0)]}
        await eventually(lambda: len(kept(tmp_path)) == 1)
    (message,) = kept(tmp_path)
    assert message["payload"] == {"ref": "refs/heads/main", "after": "abc"}
    assert message["messageType"] == "push"
    assert message["messageId"] == stable_id("webhook", delivery, 0)
    assert message["source"] == f"{name}.webhook"


async def test_a_redelivery_is_answered_but_kept_once_across_a_restart(tmp_path: Path) -> None:
    """The same X-GitHub-Delivery again gets 200 (duplicate) and is not kept again, also
    after the engine restarts on the same data folder; a new id is kept."""
    body = b'{"action": "opened"}'
    delivery = str(uuid.uuid4())
    headers = {"X-Hub-Signature-256": github_sig("k", body), "X-GitHub-Delivery": delivery}
    text = pattern(tmp_path, "secret: k")
    async with engine_from(tmp_path, text) as engine:
        first = await post(engine, body, headers)
        again = await post(engine, body, headers)
        assert first.status_code == 202
        assert again.status_code == 200
        assert again.json() == {"accepted": 0, "ids": first.json()["ids"], "duplicate": True}
        await eventually(lambda: len(kept(tmp_path)) == 1)
    assert (tmp_path / "data" / "webhook-hooks.webhook.db").is_file()
    async with engine_from(tmp_path, text) as engine:
        after_restart = await post(engine, body, headers)
        assert after_restart.status_code == 200
        assert after_restart.json()["duplicate"] is True
        other = {**headers, "X-GitHub-Delivery": str(uuid.uuid4())}
        assert (await post(engine, body, other)).status_code == 202
        await eventually(lambda: len(kept(tmp_path)) == 2)
    ids = [m["messageId"] for m in kept(tmp_path)]
    assert ids[0] == first.json()["ids"][0]
    assert len(set(ids)) == 2


async def test_remembered_ids_are_bounded(tmp_path: Path) -> None:
    """With `remember: 2`, the oldest id is forgotten once two newer ones are accepted
    (its redelivery is then kept again, under the same message id)."""
    body = b'{"n": 1}'
    sig = github_sig("k", body)
    async with engine_from(tmp_path, pattern(tmp_path, "secret: k, remember: 2")) as engine:
        for delivery in ("a", "b", "c"):
            r = await post(engine, body, {"X-Hub-Signature-256": sig, "X-GitHub-Delivery": delivery})
            assert r.status_code == 202
        assert (
            await post(engine, body, {"X-Hub-Signature-256": sig, "X-GitHub-Delivery": "c"})
        ).status_code == 200
        assert (
            await post(engine, body, {"X-Hub-Signature-256": sig, "X-GitHub-Delivery": "a"})
        ).status_code == 202
        await eventually(lambda: len(kept(tmp_path)) == 4)
    ids = [m["messageId"] for m in kept(tmp_path)]
    assert ids[0] == ids[3] == stable_id("webhook", "a", 0)


async def test_generic_form_and_the_replay_window(tmp_path: Path) -> None:
    """`<timestamp>.<body>` signed; a timestamp outside the window (either side), a
    missing one, or a signature over the body alone is 401 and keeps nothing."""
    name = f"gen-{uuid.uuid4().hex[:8]}"
    body = b'{"temp": 21.5}'
    options = "style: generic, secret: g3n, replay_window: 60"
    async with engine_from(tmp_path, pattern(tmp_path, options, name)) as engine:

        def signed(ts: int, over: str | None = None) -> dict[str, str]:
            stamp = str(ts)
            return {
                "X-Wireway-Signature": generic_sig("g3n", body, over or stamp),
                "X-Wireway-Timestamp": stamp,
            }

        now = int(time.time())
        stale = await post(engine, body, signed(now - 120))
        future = await post(engine, body, signed(now + 120))
        lying = await post(engine, body, signed(now, over=str(now - 1)))
        missing = await post(engine, body, {"X-Wireway-Signature": generic_sig("g3n", body, str(now))})
        body_only = await post(
            engine,
            body,
            {"X-Wireway-Signature": github_sig("g3n", body), "X-Wireway-Timestamp": str(now)},
        )
        assert [r.status_code for r in (stale, future, lying, missing, body_only)] == [401] * 5
        assert stale.json()["error"] == "timestamp outside the replay window"
        assert lying.json()["error"] == "invalid signature"
        assert "missing timestamp" in missing.json()["error"]
        assert unauthorized(name) == 5
        ok = await post(engine, body, signed(now - 30))
        assert ok.status_code == 202, ok.text
        bare_hex = signed(now)
        bare_hex["X-Wireway-Signature"] = bare_hex["X-Wireway-Signature"].removeprefix("sha256=")
        assert (await post(engine, body, bare_hex)).status_code == 202
        await eventually(lambda: len(kept(tmp_path)) == 2)
    assert [m["payload"] for m in kept(tmp_path)] == [{"temp": 21.5}, {"temp": 21.5}]


async def test_several_secrets_while_one_is_replaced(tmp_path: Path) -> None:
    """Every secret of `secret: [...]` and of `secret_file` is accepted; another is not."""
    (tmp_path / "hook.secrets").write_text("from-file-1\n\nfrom-file-2\n")
    options = "secret: [new, old], secret_file: hook.secrets"
    body = b'{"a": 1}'
    async with engine_from(tmp_path, pattern(tmp_path, options)) as engine:
        codes = [
            (await post(engine, body, {"X-Hub-Signature-256": github_sig(s, body)})).status_code
            for s in ("new", "old", "from-file-1", "from-file-2", "retired")
        ]
        assert codes == [202, 202, 202, 202, 401]
        await eventually(lambda: len(kept(tmp_path)) == 4)


async def test_oversize_invalid_json_and_other_formats(tmp_path: Path) -> None:
    """413 over security.max_body_bytes and 400 for invalid JSON (signed both), nothing kept;
    `format: jsonl` makes one message per line, named after the delivery id and the line."""
    security = "security: {max_body_bytes: 100}"
    async with engine_from(tmp_path, pattern(tmp_path, "secret: k", security=security)) as engine:
        big = json.dumps({"pad": "x" * 200}).encode()
        r = await post(engine, big, {"X-Hub-Signature-256": github_sig("k", big)})
        assert r.status_code == 413
        bad = b'{"nope'
        r = await post(engine, bad, {"X-Hub-Signature-256": github_sig("k", bad)})
        assert r.status_code == 400
        assert "invalid JSON" in r.json()["rejected"][0]["reasons"][0]
        assert engine.runners[0].routes[0].queue.depth == 0
    lines_dir = tmp_path / "lines"
    lines_dir.mkdir()
    async with engine_from(lines_dir, pattern(lines_dir, "secret: k, format: jsonl")) as engine:
        body = b'{"n": 1}\n{"n": 2}\n'
        headers = {"X-Hub-Signature-256": github_sig("k", body), "X-GitHub-Delivery": "d-1"}
        r = await post(engine, body, headers)
        assert r.status_code == 202
        assert r.json()["ids"] == [stable_id("webhook", "d-1", 0), stable_id("webhook", "d-1", 1)]
        await eventually(lambda: len(kept(lines_dir)) == 2)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ("address: hooks", "address"),
        ("address: /metrics, secret: k", "address"),
        ("address: /h", "secret"),
        ('address: /h, secret: ""', "secret"),
        ("address: /h, secret: k, style: gitlab", "style"),
        ("address: /h, secret: k, replay_window: 0", "replay_window"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, options: str, key: str) -> None:
    """`wireway check` names the option at fault: a path, a secret, a style, a window."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "pattern: {name: bad}\ninterfaces:\n  input:\n"
        f"    - {{type: webhook, {options}}}\n  output:\n    - {{type: stdout}}\n"
    )
    loaded, errors = load_pattern(path)
    assert loaded is None
    assert any(key in str(e) and "bad.yaml:4" in str(e) for e in errors), [str(e) for e in errors]


async def test_a_full_buffer_answers_503_and_forgets_the_delivery(tmp_path: Path) -> None:
    """503 with Retry-After while the output's buffer is full; the refused delivery id is
    not remembered, so a redelivery of it will be kept once there is room."""
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    text = f"""
pattern: {{name: full}}
interfaces:
  input:
    - {{type: webhook, address: /hooks/in, secret: k}}
  output:
    - {{type: http_client, address: "{dead}"}}
settings: {{buffer_size: 2, retries: 1000, backoff_base: 0.05, backoff_max: 0.1, timeout: 1}}
"""
    async with engine_from(tmp_path, text) as engine:

        def signed(delivery: str, body: bytes) -> dict[str, str]:
            return {"X-Hub-Signature-256": github_sig("k", body), "X-GitHub-Delivery": delivery}

        codes = [
            (await post(engine, b'{"n": %d}' % n, signed(f"d{n}", b'{"n": %d}' % n))).status_code
            for n in range(2)
        ]
        assert codes == [202, 202]
        refused = await post(engine, b'{"n": 2}', signed("d2", b'{"n": 2}'))
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) >= 1
        assert engine.runners[0].routes[0].queue.depth == 2
        deliveries = next(i for i in engine.runners[0].inputs if i.name == "full.webhook").deliveries
        assert deliveries is not None
        assert not await deliveries.seen("d2")
        assert await deliveries.seen("d1")
