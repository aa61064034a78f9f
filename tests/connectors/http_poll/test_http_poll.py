"""The http_poll input against a real local HTTP server: pages by cursor, a restart that
goes on from the stored cursor, arrays to messages, errors with backoff, and the
stale-data watchdog on /health."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from poll_feed import Feed

from conftest import wireway
from support import base_url, engine_from, eventually, written_lines
from wireway.config import load_pattern
from wireway.connectors.http_poll.input import HttpPollInput
from wireway.envelope import stable_id
from wireway.runtime.engine import Engine


@pytest.fixture
def feed() -> Iterator[Feed]:
    server = Feed()
    try:
        yield server
    finally:
        server.close()


def numbered(first: int, last: int) -> list[dict[str, Any]]:
    return [{"id": i, "ts": f"2026-01-01T00:00:{i:02d}Z"} for i in range(first, last + 1)]


def lines(path: Path) -> list[Any]:
    return written_lines(path)


def pattern(entry: str, out: Path) -> str:
    return f"""
pattern: {{name: poller}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""


def paged(feed: Feed, *, limit: int = 10, extra: str = "") -> str:
    return (
        f'{{type: http_poll, name: feed, url: "{feed.url}/items?limit={limit}", interval: 0.05, '
        "items: response.body.items, cursor: 'response.body.items.map(i, i.id).max()', "
        f"cursor_param: after{extra}}}"
    )


def poller(engine: Engine) -> HttpPollInput:
    (inp,) = engine.runners[0].inputs
    assert isinstance(inp, HttpPollInput)
    return inp


async def test_pages_by_cursor_across_polls(tmp_path: Path, feed: Feed) -> None:
    """Each poll asks after the newest id seen; every item arrives once, in order."""
    feed.add(numbered(1, 25))
    out = tmp_path / "out.jsonl"
    auth = ", basic_auth: {username: reader, password: pw}"
    async with engine_from(tmp_path, pattern(paged(feed, extra=auth), out)):
        await eventually(lambda: len(lines(out)) >= 25)
        await eventually(lambda: any("after=25" in p for p in feed.paths()))
    assert [v["id"] for v in lines(out)] == list(range(1, 26))
    asked = feed.paths()
    headers = {k.lower(): v for k, v in feed.requests[0][2].items()}
    assert headers["authorization"] == "Basic cmVhZGVyOnB3"  # reader:pw
    assert asked[:4] == [
        "/items?limit=10",
        "/items?limit=10&after=10",
        "/items?limit=10&after=20",
        "/items?limit=10&after=25",
    ]


async def test_restart_goes_on_from_the_stored_cursor(tmp_path: Path, feed: Feed) -> None:
    """A new engine on the same data dir asks after the last stored cursor (here put in
    the URL's `{cursor}`): nothing is fetched twice."""
    feed.add(numbered(1, 10))
    out = tmp_path / "out.jsonl"
    entry = (
        f'{{type: http_poll, name: feed, url: "{feed.url}/items?limit=10&after={{cursor}}", '
        "interval: 0.05, initial_cursor: 0, items: response.body.items, "
        "cursor: 'response.body.items.map(i, i.id).max()'}"
    )
    async with engine_from(tmp_path, pattern(entry, out)):
        await eventually(lambda: len(lines(out)) >= 10)
        await eventually(lambda: any("after=10" in p for p in feed.paths()))
    assert feed.paths()[0] == "/items?limit=10&after=0"
    before = len(feed.paths())
    feed.add(numbered(11, 15))
    async with engine_from(tmp_path, pattern(entry, out)):
        await eventually(lambda: len(lines(out)) >= 15)
    assert feed.paths()[before] == "/items?limit=10&after=10"
    assert [v["id"] for v in lines(out)] == list(range(1, 16))


async def test_array_body_post_with_cursor_in_body_and_auth(tmp_path: Path, feed: Feed) -> None:
    """A JSON array is one message per element; the cursor goes into the POST body as a
    number; the bearer token is sent; ids derived from `id` are stable."""
    feed.add(numbered(1, 3))
    out = tmp_path / "out.jsonl"
    entry = (
        f'{{type: http_poll, name: search, url: "{feed.url}/search", method: POST, interval: 0.05, '
        "body: {after: '{cursor}'}, initial_cursor: 0, bearer_token: s3cret, id: item.id, "
        "cursor: 'size(response.body) > 0 ? response.body[size(response.body) - 1].id : cursor'}"
    )
    text = pattern(entry, out).replace("payload_only: true", "payload_only: false")
    async with engine_from(tmp_path, text):
        await eventually(lambda: len(lines(out)) >= 3)
        feed.add(numbered(4, 4))
        await eventually(lambda: len(lines(out)) >= 4)
        await eventually(lambda: json.loads(feed.requests[-1][3]) == {"after": 4})
    got = lines(out)
    assert [m["payload"]["id"] for m in got] == [1, 2, 3, 4]
    assert [m["messageId"] for m in got] == [stable_id("http_poll", "search", i) for i in range(1, 5)]
    method, _, headers, body, _ = feed.requests[0]
    assert method == "POST"
    assert json.loads(body) == {"after": 0}
    assert {k.lower(): v for k, v in headers.items()}["authorization"] == "Bearer s3cret"


async def test_errors_back_off_then_recover(tmp_path: Path, feed: Feed) -> None:
    """Non-2xx answers are counted and retried after growing waits; /health shows the
    input down meanwhile and up once a poll works; nothing is lost."""
    feed.add(numbered(1, 3))
    feed.statuses = [500, 503, 500]
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(paged(feed, extra=", max_backoff: 5"), out)) as engine:
        await eventually(lambda: poller(engine).failures >= 1)
        assert engine.health()["services"]["feed"] == "down"
        await eventually(lambda: len(lines(out)) >= 3)
        await eventually(lambda: engine.health()["services"]["feed"] == "up")
        assert poller(engine).errors == 3
    times = [r[4] for r in feed.requests[:4]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # waits of 0.05, 0.1, 0.2 s (+-10%): sleeping never ends early, so these are lower bounds
    for gap, least in zip(gaps, (0.045, 0.09, 0.18), strict=True):
        assert gap >= least * 0.95, gaps
    assert [v["id"] for v in lines(out)] == [1, 2, 3]


async def test_unreachable_server_is_retried(tmp_path: Path) -> None:
    """A connection refused is a failed poll too; once the server is there, items come."""
    closed = Feed()
    port = closed.port
    closed.close()
    out = tmp_path / "out.jsonl"
    entry = (
        f'{{type: http_poll, name: feed, url: "http://127.0.0.1:{port}/items", interval: 0.05, '
        "items: response.body.items, max_backoff: 0.2}"
    )
    async with engine_from(tmp_path, pattern(entry, out)) as engine:
        await eventually(lambda: poller(engine).failures >= 2)
        assert engine.health()["services"]["feed"] == "down"
        server = Feed(numbered(1, 2), port=port)
        try:
            await eventually(lambda: len(lines(out)) >= 2)
            await eventually(lambda: engine.health()["services"]["feed"] == "up")
        finally:
            server.close()


async def test_a_slow_answer_times_out_and_is_retried(tmp_path: Path, feed: Feed) -> None:
    """An answer slower than `timeout` is a failed poll; once the server is quick again
    the items come."""
    feed.add(numbered(1, 2))
    feed.delay = 1.0
    out = tmp_path / "out.jsonl"
    extra = ", timeout: 200ms, max_backoff: 0.2"
    async with engine_from(tmp_path, pattern(paged(feed, extra=extra), out)) as engine:
        await eventually(lambda: poller(engine).failures >= 1)
        assert engine.health()["services"]["feed"] == "down"
        feed.delay = 0.0
        await eventually(lambda: len(lines(out)) >= 2)
        await eventually(lambda: engine.health()["services"]["feed"] == "up")
    assert [v["id"] for v in lines(out)] == [1, 2]


async def test_stale_watchdog_degrades_health_then_recovers(tmp_path: Path, feed: Feed) -> None:
    """No new item for `stale_after`: /health says degraded with the input down; the
    next new item brings it back up."""
    feed.add(numbered(1, 2))
    out = tmp_path / "out.jsonl"
    async with engine_from(tmp_path, pattern(paged(feed, extra=", stale_after: 0.3"), out)) as engine:
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:

            async def health() -> dict[str, Any]:
                answer = await client.get("/health")
                return dict(answer.json())

            await eventually(lambda: len(lines(out)) >= 2)
            assert (await health())["services"]["feed"] == "up"
            await eventually(lambda: engine.health()["services"]["feed"] == "down", timeout=5)
            body = await health()
            assert body["status"] == "degraded"
            assert body["services"]["feed"] == "down"
            await eventually(lambda: engine.status()["patterns"][0]["inputs"][0]["state"] == "stale")
            feed.add(numbered(3, 3))
            await eventually(lambda: engine.health()["services"]["feed"] == "up", timeout=5)
            assert (await health())["services"]["feed"] == "up"


@pytest.mark.parametrize(
    ("entry", "key", "words"),
    [
        ("{type: http_poll, url: 'ftp://127.0.0.1/x'}", "url", "http://"),
        (
            "{type: http_poll, url: 'http://127.0.0.1/x', cursor: 'response.body.next'}",
            "cursor",
            "goes nowhere",
        ),
        ("{type: http_poll, url: 'http://127.0.0.1/x?a={cursor}'}", "url", "`cursor`"),
        ("{type: http_poll, url: 'http://127.0.0.1/x', items: 'response.body.('}", "items", "CEL"),
        ("{type: http_poll, url: 'http://127.0.0.1/x', interval: 5 minutes}", "interval", "duration"),
        ("{type: http_poll, url: 'http://127.0.0.1/x', body: {a: 1}}", "body", "POST"),
    ],
)
def test_bad_options_are_named_with_their_line(tmp_path: Path, entry: str, key: str, words: str) -> None:
    """Each wrong option is an error at its key and line, not a traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(pattern(entry, tmp_path / "out.jsonl"))
    loaded, errors = load_pattern(path)
    assert loaded is None
    assert any(key in str(e) and "bad.yaml:5" in str(e) and words in str(e) for e in errors), [
        str(e) for e in errors
    ]


def test_example_check_names_errors(tmp_path: Path) -> None:
    """`wireway check` reports a bad cursor expression with exit 1 and no traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        pattern("{type: http_poll, url: 'http://127.0.0.1/x', cursor: '1 +', cursor_param: c}", path)
    )
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "cursor" in result.stdout + result.stderr
