"""wireway to wireway: an http_client output signs, a webhook input of another engine
checks, both over real HTTP on loopback."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from support import base_url, engine_from, eventually, written_lines
from wireway.envelope import stable_id
from wireway.observability.metrics import REGISTRY
from wireway.runtime.engine import Engine


def receiving(tmp: Path, name: str, options: str) -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {{type: webhook, address: /hooks/in, {options}}}
  output:
    - {{type: file, address: "{tmp / "out.jsonl"}"}}
"""


def sending(url: str, options: str) -> str:
    return f"""
pattern: {{name: sender}}
interfaces:
  input:
    - {{type: http, address: /in}}
  output:
    - {{type: http_client, address: "{url}", {options}}}
settings: {{backoff_base: 0.01, backoff_max: 0.05, retries: 0}}
"""


def kept(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "out.jsonl"
    return written_lines(path)


async def post(engine: Engine, body: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
        return await client.post("/in", json=body)


def duplicates(pattern: str) -> float:
    labels = {"pattern": pattern, "component": f"{pattern}.webhook", "outcome": "duplicate"}
    return REGISTRY.get_sample_value("wireway_messages_total", labels) or 0.0


def dirs(tmp: Path) -> tuple[Path, Path]:
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    return tmp / "a", tmp / "b"


async def test_generic_signature_end_to_end_and_a_resend_kept_once(tmp_path: Path) -> None:
    """The generic style on both sides: envelopes arrive with their ids; the same message
    sent again (same X-Wireway-Message-Id) is answered but kept once."""
    a, b = dirs(tmp_path)
    name = f"hooks-{uuid.uuid4().hex[:8]}"
    async with engine_from(b, receiving(b, name, "style: generic, secret: [new, k]")) as receiver:
        url = f"{base_url(receiver)}/hooks/in"
        async with engine_from(a, sending(url, "hmac: {secret: k, style: generic}")) as sender:
            r = await post(sender, [{"n": 1}, {"n": 2}])
            assert r.status_code == 202
            ids = r.json()["ids"]
            await eventually(lambda: len(kept(b)) == 2)
            before = duplicates(name)
            again = {"messageId": ids[0], "messageType": "data", "payload": {"n": 1}}
            assert (await post(sender, again)).status_code == 202
            await eventually(lambda: duplicates(name) == before + 1)
    got = kept(b)
    assert sorted(m["messageId"] for m in got) == sorted(ids)
    assert sorted(m["payload"]["n"] for m in got) == [1, 2]


async def test_github_style_end_to_end_with_the_event_from_a_template(tmp_path: Path) -> None:
    """http_client `style: github` with `X-GitHub-Event` from the payload: the webhook
    input's default style keeps it as that messageType, named after the delivery id."""
    a, b = dirs(tmp_path)
    async with engine_from(b, receiving(b, "gh", "secret: s3cret")) as receiver:
        url = f"{base_url(receiver)}/hooks/in"
        options = (
            "payload_only: true, hmac: {secret: s3cret, style: github}, "
            'headers: {X-GitHub-Event: "{payload.event}"}'
        )
        async with engine_from(a, sending(url, options)) as sender:
            r = await post(sender, {"event": "push", "ref": "main"})
            assert r.status_code == 202
            (sent_id,) = r.json()["ids"]
            await eventually(lambda: len(kept(b)) == 1)
    (message,) = kept(b)
    assert message["messageType"] == "push"
    assert message["payload"] == {"event": "push", "ref": "main"}
    assert message["messageId"] == stable_id("webhook", sent_id, 0)


async def test_a_wrong_secret_is_refused_and_dead_lettered_by_the_sender(tmp_path: Path) -> None:
    """The receiver answers 401 and keeps nothing; the sender takes the 4xx as final and
    dead-letters the message."""
    a, b = dirs(tmp_path)
    name = f"strict-{uuid.uuid4().hex[:8]}"
    async with engine_from(b, receiving(b, name, "style: generic, secret: right")) as receiver:
        url = f"{base_url(receiver)}/hooks/in"
        async with engine_from(a, sending(url, "hmac: {secret: wrong, style: generic}")) as sender:
            assert (await post(sender, {"n": 1})).status_code == 202
            runner = sender.runners[0]
            await eventually(lambda: runner.store.dlq_depth(runner.name) == 1)
        labels = {"pattern": name, "component": f"{name}.webhook", "outcome": "unauthorized"}
        assert REGISTRY.get_sample_value("wireway_messages_total", labels) == 1
    assert kept(b) == []
