"""Default interface names are unique; explicit duplicates are still an error."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import free_port, wait_http, wireway
from wireway.config import load_pattern

TWO_FILES = """
pattern: {{name: orders}}
interfaces:
  input:
    - {{type: http, address: /orders}}
  output:
    - type: file
      address: "{first}"
    - type: file
      address: "{second}"
settings: {{buffer: memory}}
"""


def test_two_unnamed_outputs_of_one_type_get_unique_names(tmp_path: Path) -> None:
    """The first keeps `<pattern>.<type>`, the next is `<pattern>.<type>.2`; inputs the same."""
    path = tmp_path / "p.yaml"
    path.write_text("""
pattern: {name: orders}
interfaces:
  input:
    - {type: http, address: /a}
    - {type: http, address: /b}
  output:
    - {type: file, address: out/a.jsonl}
    - {type: file, address: out/b.jsonl}
    - {type: file, address: out/c.jsonl, name: orders.file.2}
""")
    pattern, errors = load_pattern(path)
    assert not errors, [str(e) for e in errors]
    assert pattern is not None
    assert [i.name for i in pattern.inputs] == ["orders.http", "orders.http.2"]
    # an explicit name is kept, and a default one steps around it
    assert [o.name for o in pattern.outputs] == ["orders.file", "orders.file.3", "orders.file.2"]


def test_explicit_duplicate_names_are_an_error(tmp_path: Path) -> None:
    """Two outputs named alike are reported on the second one's `name:` line."""
    path = tmp_path / "p.yaml"
    path.write_text("""pattern: {name: orders}
interfaces:
  input:
    - {type: http, address: /a}
  output:
    - type: file
      name: copy
      address: out/a.jsonl
    - type: file
      address: out/b.jsonl
      name: copy
""")
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"{path}:11 interfaces.output[1].name: output name `copy` is used twice"
    )


def test_check_accepts_two_unnamed_file_outputs(tmp_path: Path) -> None:
    """`wireway check` passes a pattern with two `file` outputs and no names."""
    path = tmp_path / "p.yaml"
    path.write_text(TWO_FILES.format(first=tmp_path / "a.jsonl", second=tmp_path / "b.jsonl"))
    result = wireway("check", str(path))
    assert result.returncode == 0, result.stderr
    assert "outputs [file, file]" in result.stdout


def test_run_delivers_to_both_unnamed_file_outputs(tmp_path: Path) -> None:
    """`wireway run`: a message posted once lands in both files."""
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    path = tmp_path / "p.yaml"
    path.write_text(TWO_FILES.format(first=first, second=second))
    port = free_port()
    command = [sys.executable, "-m", "wireway", "run", str(path), "--data-dir", str(tmp_path / "data")]
    proc = subprocess.Popen(
        [*command, "--http", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health")
        answer = httpx.post(url + "/orders", json={"order": 7}, trust_env=False)
        assert answer.status_code == 202, answer.text
        for _ in range(200):  # bounded: up to about 10 s
            if first.exists() and second.exists() and first.read_text() and second.read_text():
                break
            time.sleep(0.05)
        for file in (first, second):
            lines = file.read_text().splitlines()
            assert len(lines) == 1
            assert json.loads(lines[0])["payload"] == {"order": 7}
        status = httpx.get(url + "/status", trust_env=False).json()
        (pattern,) = status["patterns"]
        assert sorted(o["name"] for o in pattern["outputs"]) == ["orders.file", "orders.file.2"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert proc.stderr is not None
    assert code == 0, proc.stderr.read().decode()
