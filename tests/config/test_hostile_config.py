"""Hostile and broken pattern files: refused with one clear error (file, line, key path),
exit 1 and no traceback, before a document is built from them.

The bomb and the 50 MB file go through the real CLI, with an address-space limit on
the child (so a regression ends in MemoryError instead of eating the machine) and a
subprocess timeout (so it ends in a failure instead of a hang).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from wireway.config import load_pattern
from wireway.config.yamlload import MAX_ALIASES, MAX_BYTES, MAX_DEPTH

MEMORY_LIMIT = 1 << 30  # bytes of address space for the child: a few times what it needs


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400"}
    env.pop("WIREWAY_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "wireway", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=_limit_memory,
    )


def bomb() -> str:
    """Ten levels of ten aliases: 10^10 values once expanded."""
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        levels.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "pattern: {name: bomb}\n" + "\n".join(levels) + "\n"


def refused(result: subprocess.CompletedProcess[str], file: Path, message: str) -> str:
    """The one error line, after checking the exit code and that nothing crashed."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert lines[-1] == "1 error(s)", lines
    assert lines[0].startswith(f"{file}:"), lines[0]
    assert message in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["check", "run"])
def test_an_anchors_bomb_is_refused_by_the_cli(tmp_path: Path, command: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    line = refused(run_cli(command, str(path), cwd=tmp_path), path, "YAML aliases expand to more than")
    assert " a" in line  # the anchor's key


def test_many_aliases_are_refused_while_composing(tmp_path: Path) -> None:
    """Aliases to a scalar expand to little, but their count alone is bounded."""
    path = tmp_path / "aliases.yaml"
    items = ", ".join(["*x"] * (MAX_ALIASES + 1))
    path.write_text(f"pattern: {{name: many}}\nx: &x 1\nlist: [{items}]\n")
    _, errors = load_pattern(path)
    assert len(errors) == 1
    assert errors[0].line == 3
    assert errors[0].path.startswith("list[")
    assert f"more than {MAX_ALIASES:,} YAML aliases" in errors[0].message


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_50_mb_file_is_refused_before_it_is_read(tmp_path: Path, command: str) -> None:
    path = tmp_path / "big.yaml"
    entry = "    - {type: http, address: /x}\n"
    with path.open("w") as f:
        f.write("pattern: {name: big}\ninterfaces:\n  input:\n")
        f.write(entry * (50 * 1024 * 1024 // len(entry)))
    line = refused(run_cli(command, str(path), cwd=tmp_path), path, "over the limit of")
    assert f"the file is {path.stat().st_size:,} bytes" in line
    assert f"{MAX_BYTES:,}" in line


@pytest.mark.parametrize(
    ("opening", "closing", "path"), [("[", "]", "pattern[0][0]"), ("{a: ", "}", "pattern.a.a")]
)
def test_deep_nesting_is_refused_at_its_key(tmp_path: Path, opening: str, closing: str, path: str) -> None:
    file = tmp_path / "deep.yaml"
    file.write_text("pattern:\n  " + opening * 10_000 + "1" + closing * 10_000 + "\n")
    _, errors = load_pattern(file)
    assert len(errors) == 1
    assert errors[0].message == f"YAML nested deeper than {MAX_DEPTH} levels"
    assert errors[0].line == 2
    assert errors[0].path.startswith(path)


def test_deep_nesting_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("pattern: " + "[" * 10_000 + "]" * 10_000 + "\n")
    refused(run_cli("check", str(path), cwd=tmp_path), path, f"nested deeper than {MAX_DEPTH} levels")


def test_nesting_within_the_limit_still_loads(tmp_path: Path) -> None:
    """The limit leaves room for any real file: deep options well under it load."""
    path = tmp_path / "ok.yaml"
    nested = "{a: " * 20 + "1" + "}" * 20
    path.write_text(
        "pattern: {name: ok}\n"
        "interfaces:\n  input:\n    - {type: http, address: /x}\n"
        f"  output:\n    - {{type: stdout}}\n"
        f"processors:\n  - transform: {{set: {{'payload.x': \"'1'\"}}}}\n"
        f"x-ignored: &d {nested}\n"
    )
    _, errors = load_pattern(path)
    # the only error is the unknown section: nesting and size were fine
    assert [e.path for e in errors] == ["x-ignored"]


def test_unknown_keys_and_wrong_types_name_their_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "pattern: {name: bad}\n"
        "interfaces:\n"
        "  input:\n"
        "    - type: http\n"
        "      address: /x\n"
        "      colour: blue\n"
        "  output:\n"
        "    - {type: stdout}\n"
        "settings:\n"
        "  retries: many\n"
    )
    _, errors = load_pattern(path)
    where = sorted((e.line, e.path) for e in errors)
    assert where == [(6, "interfaces.input[0].colour"), (10, "settings.retries")], [str(e) for e in errors]
    result = run_cli("check", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{path}:6 interfaces.input[0].colour" in result.stderr
    assert f"{path}:10 settings.retries" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"pattern: {name: x}\n\xff\xfe bad\n", "not UTF-8 text"),
        (b"pattern: [unclosed\n", "YAML syntax"),
        (b"- just\n- a list\n", "must be a mapping"),
        (b"\x00\x01\x02", "YAML syntax"),
        (
            b"pattern: {name: x}\nc: !!python/object/apply:os.system [id]\n",
            "could not determine a constructor",
        ),
        (b"pattern: {name: !custom x}\n", "could not determine a constructor"),
    ],
)
def test_broken_files_give_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)
    _, errors = load_pattern(path)
    assert errors, "no error"
    assert message in errors[0].message, [str(e) for e in errors]
    assert errors[0].file == str(path)
