"""A third-party plugin package adds a component: installed with pip (into a
temporary folder, not the project's venv), `wireway check`, `wireway docs` and
`wireway run` see it through its entry point."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import free_port, wait_http, wireway

PLUGIN = Path(__file__).resolve().parent / "wireway-hello"

PATTERN = """
pattern: {{name: greet, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /people}}
  output:
    - {{type: hello, address: "{out}", greeting: Hi}}
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """PYTHONPATH with the plugin installed by pip (its package and its dist-info)."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("source") / PLUGIN.name  # the build leaves its files there
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",  # the venv's setuptools, no download
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (target / "wireway_hello" / "output.py").is_file()
    return str(target)


def test_check_and_docs_see_the_plugin(plugin_path: str, tmp_path: Path) -> None:
    """`wireway check` accepts a pattern naming the plugin's output (and reports its
    option errors); `wireway docs` writes its reference page."""
    env = {"PYTHONPATH": plugin_path}
    pattern = tmp_path / "greet.yaml"
    pattern.write_text(PATTERN.format(out=tmp_path / "greetings.txt"))
    result = wireway("check", str(pattern), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "outputs [hello]" in result.stdout
    pattern.write_text(PATTERN.format(out="x").replace("greeting: Hi", "greting: Hi"))
    result = wireway("check", str(pattern), env=env)
    assert result.returncode == 1
    assert "greting" in result.stdout + result.stderr
    docs = wireway("docs", str(tmp_path / "reference"), env=env)
    assert docs.returncode == 0, docs.stderr
    page = (tmp_path / "reference" / "output-hello.md").read_text()
    assert "Append `<greeting>, <payload.name>!` per message to a file." in page
    # without the plugin on the path the type is unknown
    result = wireway("check", str(pattern))
    assert result.returncode == 1
    assert "unknown output type `hello`" in result.stdout + result.stderr


def test_run_a_pattern_through_the_plugin_output(plugin_path: str, tmp_path: Path) -> None:
    """http input -> the plugin's `hello` output: the greetings land in the file."""
    out = tmp_path / "greetings.txt"
    pattern = tmp_path / "greet.yaml"
    pattern.write_text(PATTERN.format(out=out))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": plugin_path}
    env.pop("WIREWAY_CONFIG", None)
    command = [sys.executable, "-m", "wireway", "run", str(pattern), "--http", f"127.0.0.1:{port}"]
    command += ["--data-dir", str(tmp_path / "data")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        people = [{"name": "Ada"}, {"name": "Grace"}, {"name": "Linus"}]
        r = httpx.post(f"http://127.0.0.1:{port}/people", json=people, trust_env=False)
        assert r.status_code == 202, r.text
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    # a clean stop drains the outbox: every greeting was written before the exit
    assert out.read_text() == "Hi, Ada!\nHi, Grace!\nHi, Linus!\n"


def test_a_pattern_loads_only_the_modules_it_names(tmp_path: Path) -> None:
    """Loading and starting nothing but http -> file imports neither the MQTT
    connector nor the sensor application."""
    pattern = tmp_path / "p.yaml"
    pattern.write_text(PATTERN.format(out=tmp_path / "o").replace("type: hello", "type: file"))
    pattern.write_text(pattern.read_text().replace(", greeting: Hi", ""))
    code = (
        "import sys\n"
        "from pathlib import Path\nfrom wireway.config import load_pattern\n"
        f"pattern, errors = load_pattern(Path({str(pattern)!r}))\n"
        "assert not errors, errors\n"
        "loaded = sorted(m for m in sys.modules if 'mqtt' in m or m.startswith('wireway.apps') or m == 'paho')\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_plugin_module_that_cannot_be_imported_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """An announced module that fails to import (a plugin's missing dependency): the
    error names the component and its module."""
    from wireway import registry

    monkeypatch.setattr(registry, "_announced", lambda: {("output", "gone"): "wireway_gone.output"})
    with pytest.raises(ImportError, match=r"output `gone` comes from wireway_gone.output, which cannot"):
        registry.lookup("output", "gone")
    assert "gone" in registry.names("output")
