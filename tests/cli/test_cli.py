"""The CLI's help texts and `wireway dlq` against a real store file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import wireway
from wireway.envelope import Message
from wireway.runtime.store import DeadLetter, SqliteStore

COMMANDS = [
    [],
    ["run"],
    ["check"],
    ["status"],
    ["bench"],
    ["dlq"],
    ["dlq", "list"],
    ["dlq", "show"],
    ["dlq", "redrive"],
    ["dlq", "purge"],
    ["version"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "wireway")
def test_every_command_has_help_with_an_example(cmd: list[str]) -> None:
    """`--help` explains the command and gives an example."""
    result = wireway(*cmd, "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


async def test_dlq_list_show_redrive_purge(tmp_path: Path) -> None:
    """The DLQ commands work on --data-dir, as tables and JSON."""
    store = SqliteStore(tmp_path / "wireway.db")
    await store.open()
    letters = [
        DeadLetter(
            Message(f"m-{i}", "2026-01-01T00:00:00Z", {"i": i}),
            "orders",
            "orders/out",
            "HTTP 404: gone",
            1,
        )
        for i in range(3)
    ]
    await store.dead_letter(letters)
    await store.close()
    d = ["--data-dir", str(tmp_path)]
    listed = wireway("dlq", "list", *d, env={"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    assert "m-0" in listed.stdout
    assert "HTTP 404: gone" in listed.stdout
    assert "3 shown" in listed.stdout
    shown = wireway("dlq", "show", "m-1", *d)
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["message"]["payload"] == {"i": 1}
    assert wireway("dlq", "show", "nope", *d).returncode == 1
    redriven = wireway("dlq", "redrive", "--message-id", "m-2", *d)
    assert "1 message(s) queued" in redriven.stdout
    purged = wireway("dlq", "purge", "--pattern", "orders", "--yes", *d)
    assert "2 message(s) purged" in purged.stdout


def test_dlq_without_a_store_is_a_clear_error(tmp_path: Path) -> None:
    """No database yet: one error line, exit 1, no traceback, nothing created."""
    result = wireway("dlq", "list", "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "none").exists()


def test_the_cli_leaves_out_what_a_run_never_uses() -> None:
    """The CEL package's REPL and PyJWT (with cryptography) are not loaded by the CLI:
    together ~35 MB of resident memory a running instance would carry for nothing."""
    import subprocess
    import sys

    checks = [
        (
            "import sys, wireway.cli.main, wireway.expr as e;"
            "assert e.Expr('payload.x > 1').test({'payload': {'x': 2}});",
            ("prompt_toolkit", "pygments", "jwt"),
        ),
        # the sensor application: jsonschema only for its reference check, httpx only for webhooks
        (
            "import sys, wireway.runtime.engine, wireway.apps.sensor_ingest.enrich,"
            " wireway.apps.sensor_ingest.alerts_output, wireway.processors.validate;",
            ("jsonschema", "httpx"),
        ),
    ]
    for imports, absent in checks:
        code = f"{imports}print(sorted(m for m in {absent!r} if m in sys.modules))"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert out.stdout.strip() == "[]", code
