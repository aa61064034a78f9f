"""Bad nats options are `wireway check` errors at their key; `wireway bench nats` runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats_helpers import input_pattern, output_pattern

from conftest import need_service, wireway
from support import check_fails_at


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("{type: nats, subject: a, url: 'http://127.0.0.1:4222'}", "url"),
        ("{type: nats, subject: 'a..b'}", "subject"),
        ("{type: nats, subject: a, stream: s}", "stream"),
        ("{type: nats, subject: a, jetstream: true}", "stream"),
        ("{type: nats, subject: a, jetstream: true, stream: s, queue_group: g}", "queue_group"),
        ("{type: nats, subject: a, jetstream: true, stream: s, batch: 0}", "batch"),
        ("{type: nats, subject: a, jetstream: true, stream: 's.x'}", "stream"),
        ("{type: nats, subject: a, durable: d}", "durable"),
    ],
)
def test_bad_input_options_are_check_errors(entry: str, key: str, tmp_path: Path) -> None:
    """A wrong option is a `wireway check` error at its key, without a traceback."""
    check_fails_at(input_pattern("bad", entry, tmp_path / "out.jsonl"), tmp_path, 5, key)


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ("{type: nats, subject: 'a.*'}", "subject"),
        ("{type: nats, subject: 'a.{payload.x'}", "subject"),
        ("{type: nats, subject: a, create: true}", "create"),
        ("{type: nats, subject: 'a.{payload.x}', jetstream: true, stream: s, create: true}", "create"),
        ("{type: nats, subject: a, timeout: 0}", "timeout"),
    ],
)
def test_bad_output_options_are_check_errors(entry: str, key: str, tmp_path: Path) -> None:
    """A wrong option is a `wireway check` error at its key, without a traceback."""
    check_fails_at(output_pattern("bad", 7000, entry), tmp_path, 7, key)


@pytest.mark.slow
def test_bench_nats_reports_its_figures() -> None:
    """`wireway bench nats` end to end on tiny inputs: both rows of its table are there
    (the figures themselves are not checked)."""
    need_service("nats", 4222)
    result = wireway(
        "bench", "nats", "--messages", "500", "--latency-seconds", "1", "--rate", "200", timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "full speed" in result.stdout
    assert "200/s" in result.stdout
