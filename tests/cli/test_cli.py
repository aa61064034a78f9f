"""The CLI's help texts and what it loads (`wireway dlq` is in test_cli_dlq.py)."""

from __future__ import annotations

import pytest

from conftest import wireway

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
            " wireway.apps.sensor_ingest.steps, wireway.processors.validate;",
            ("jsonschema", "httpx"),
        ),
    ]
    for imports, absent in checks:
        code = f"{imports}print(sorted(m for m in {absent!r} if m in sys.modules))"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert out.stdout.strip() == "[]", code
