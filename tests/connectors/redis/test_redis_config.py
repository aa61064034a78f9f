"""Bad options of the redis input and output are `wireway check` errors at their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import wireway
from wireway.config import load_pattern

BAD_INPUTS = [
    ("{type: redis, mode: queue, key: k}", "mode", "invalid enum value"),
    ("{type: redis, key: k}", "mode", "required"),
    ("{type: redis, mode: list}", "key", "required in list mode"),
    ("{type: redis, mode: streams}", "key", "required in streams mode"),
    ("{type: redis, mode: pubsub}", "channels", "needs `channels` or `patterns`"),
    ("{type: redis, mode: list, key: k, channels: [a]}", "channels", "only used in pubsub mode"),
    ("{type: redis, mode: pubsub, channels: [a], key: k}", "key", "only used in list and streams"),
    ("{type: redis, mode: streams, key: k, processing: p}", "processing", "only used in list mode"),
    ("{type: redis, mode: list, key: k, group: g}", "group", "only used in streams mode"),
    ("{type: redis, mode: list, key: k, processing: k}", "processing", "must differ from `key`"),
    ("{type: redis, mode: pubsub, patterns: ['']}", "patterns[0]", "must not be empty"),
    ("{type: redis, mode: list, key: k, pop: middle}", "pop", "invalid enum value"),
    ("{type: redis, mode: streams, key: k, start_id: latest}", "start_id", "entry id"),
    ("{type: redis, mode: streams, key: k, claim_idle: 0}", "claim_idle", "> 0"),
    ("{type: redis, mode: streams, key: k, max_deliver: 0}", "max_deliver", ">= 1"),
    ("{type: redis, mode: streams, key: k, field: ''}", "field", "must not be empty"),
    ("{type: redis, mode: list, key: k, batch_size: 0}", "batch_size", ">= 1"),
    ("{type: redis, mode: list, key: k, reconnect_min: 5, reconnect_max: 1}", "reconnect_min", "exceed"),
    ("{type: redis, mode: list, key: k, url: 'http://127.0.0.1:6379'}", "url", "redis://"),
    ("{type: redis, mode: list, key: k, blocking: 5}", "blocking", "unknown"),
]
BAD_OUTPUTS = [
    ("{type: redis, mode: queue}", "mode", "invalid enum value"),
    ("{type: redis, mode: list, push: left}", "push", "invalid enum value"),
    ("{type: redis, channel: ''}", "channel", "must not be empty"),
    ("{type: redis, mode: streams, field: ''}", "field", "must not be empty"),
    ("{type: redis, mode: streams, maxlen: 0}", "maxlen", ">= 1"),
]


def write(tmp: Path, inputs: str, outputs: str) -> Path:
    path = tmp / "bad.yaml"
    path.write_text(
        f"pattern: {{name: bad}}\ninterfaces:\n  input:\n    - {inputs}\n  output:\n    - {outputs}\n"
    )
    return path


def errors_of(path: Path) -> list[str]:
    pattern, errors = load_pattern(path)
    assert pattern is None
    return [str(e) for e in errors]


@pytest.mark.parametrize(("entry", "key", "says"), BAD_INPUTS)
def test_bad_input_option_is_named(entry: str, key: str, says: str, tmp_path: Path) -> None:
    """Each bad input option is an error on the entry's line naming the option."""
    errors = errors_of(write(tmp_path, entry, "{type: stdout}"))
    assert any(f"bad.yaml:4 interfaces.input[0].{key}: " in e and says in e for e in errors), errors


@pytest.mark.parametrize(("entry", "key", "says"), BAD_OUTPUTS)
def test_bad_output_option_is_named(entry: str, key: str, says: str, tmp_path: Path) -> None:
    """Each bad output option is an error on the entry's line naming the option."""
    errors = errors_of(write(tmp_path, "{type: http, address: /in}", entry))
    assert any(f"bad.yaml:6 interfaces.output[0].{key}: " in e and says in e for e in errors), errors


def test_check_exits_1_without_a_traceback(tmp_path: Path) -> None:
    """`wireway check` prints the error at its key and exits 1."""
    path = write(tmp_path, "{type: redis, mode: streams, key: k, claim_idle: 0}", "{type: stdout}")
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert "claim_idle" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
