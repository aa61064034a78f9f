"""The `exec` input with real processes: stdout lines as messages, malformed lines to the
DLQ, restarts with backoff, stderr in the log, and no process left after stop."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from support import engine_from, eventually, written_lines
from wireway.connectors.exec.config import Backoff
from wireway.connectors.exec.input import ExecInput
from wireway.connectors.exec.process import RestartDelay
from wireway.runtime.engine import Engine

PY = sys.executable


def lines_of(path: Path) -> list[Any]:
    return written_lines(path)


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pattern(tmp: Path, entry: str, name: str = "exec-in") -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: '{tmp}/out.jsonl', payload_only: true}}
"""


def exec_input(engine: Engine) -> ExecInput:
    inp = engine.runners[0].inputs[0]
    assert isinstance(inp, ExecInput)
    return inp


async def test_stdout_lines_are_messages_and_bad_lines_go_to_the_dlq(tmp_path: Path) -> None:
    """Each JSON line of the command's stdout is a message; a malformed one is dead-lettered
    with its line number; a command that is not restarted has finished."""
    script = "print('{\"n\": 1}'); print('not json'); print('{\"n\": 2}', end='')"
    entry = (
        f"{{type: exec, command: ['{PY}', '-c', '{script.replace(chr(39), chr(39) * 2)}'], restart: 'no'}}"
    )
    async with engine_from(tmp_path, pattern(tmp_path, entry)) as engine:
        out = tmp_path / "out.jsonl"
        await eventually(lambda: len(lines_of(out)) == 2)
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("exec-in") == 1)
        await eventually(lambda: exec_input(engine).state == "finished")
    assert lines_of(out) == [{"n": 1}, {"n": 2}]  # the last line had no newline


async def test_text_format_and_a_shell_command(tmp_path: Path) -> None:
    """`format: text` takes each line as a string; `shell: true` runs one command line."""
    entry = "{type: exec, command: 'printf \"a b\\nc\\n\" | tr a-c x-z', shell: true, restart: 'no', format: text}"
    async with engine_from(tmp_path, pattern(tmp_path, entry)):
        await eventually(lambda: len(lines_of(tmp_path / "out.jsonl")) == 2)
    assert lines_of(tmp_path / "out.jsonl") == ["x y", "z"]


async def test_a_command_that_exits_is_restarted_with_backoff(tmp_path: Path) -> None:
    """Each run prints its pid and exits; wireway starts it again and again."""
    entry = (
        f"{{type: exec, command: ['{PY}', '-c', 'import os; print(os.getpid())'], "
        "backoff: {initial: 0.05, max: 0.2}}"
    )
    async with engine_from(tmp_path, pattern(tmp_path, entry)) as engine:
        await eventually(lambda: len(lines_of(tmp_path / "out.jsonl")) >= 3)
        assert exec_input(engine).runs >= 3
    pids = lines_of(tmp_path / "out.jsonl")
    assert len(set(pids)) == len(pids)


async def test_on_failure_restarts_only_after_a_failing_exit(tmp_path: Path) -> None:
    """`restart: on-failure`: exit 3 is followed by a new run, exit 0 ends the input."""
    marker = tmp_path / "ran-once"
    script = (
        f"import os, sys; first = not os.path.exists({str(marker)!r}); open({str(marker)!r}, 'a').close(); "
        "print(1 if first else 2); sys.exit(3 if first else 0)"
    )
    entry = json.dumps(
        {"type": "exec", "command": [PY, "-c", script], "restart": "on-failure", "backoff": {"initial": 0.05}}
    )
    async with engine_from(tmp_path, pattern(tmp_path, entry)) as engine:
        await eventually(lambda: exec_input(engine).state == "finished")
        assert exec_input(engine).runs == 2
    assert lines_of(tmp_path / "out.jsonl") == [1, 2]


async def test_stderr_lines_go_to_the_log_with_the_command(tmp_path: Path) -> None:
    """What the command writes to stderr is logged, named by the command."""
    script = "import sys; sys.stderr.write('sensor warming up\\n'); print(1)"
    entry = json.dumps(
        {"type": "exec", "command": [PY, "-c", script], "restart": "no", "stderr_level": "info"}
    )
    with capture_logs() as logs:
        async with engine_from(tmp_path, pattern(tmp_path, entry)):
            await eventually(lambda: any(e.get("line") == "sensor warming up" for e in logs))
    event = next(e for e in logs if e.get("line") == "sensor warming up")
    assert event["command"] == os.path.basename(PY)
    assert event["log_level"] == "info"


async def test_stop_ends_the_process_group_without_orphans(tmp_path: Path) -> None:
    """The command and a process it started are gone after stop, even one ignoring SIGTERM."""
    command = "trap '' TERM; sleep 300 & echo $!; echo $$; wait"
    entry = json.dumps({"type": "exec", "command": command, "shell": True, "stop_timeout": 0.5})
    async with engine_from(tmp_path, pattern(tmp_path, entry)):
        await eventually(lambda: len(lines_of(tmp_path / "out.jsonl")) == 2)
        pids = lines_of(tmp_path / "out.jsonl")
        assert all(alive(pid) for pid in pids)
    await eventually(lambda: not any(alive(pid) for pid in pids), timeout=5)


async def test_what_a_run_left_behind_is_ended_before_the_next(tmp_path: Path) -> None:
    """A command that exits while its background child still runs: the child is ended too."""
    command = "sleep 300 & echo $!"
    entry = json.dumps(
        {"type": "exec", "command": command, "shell": True, "restart": "no", "stop_timeout": 0.5}
    )
    async with engine_from(tmp_path, pattern(tmp_path, entry)) as engine:
        await eventually(lambda: exec_input(engine).state == "finished")
        (pid,) = lines_of(tmp_path / "out.jsonl")
        await eventually(lambda: not alive(pid), timeout=5)


async def test_a_missing_program_is_retried_not_fatal(tmp_path: Path) -> None:
    """A program that cannot be started is logged and tried again; the engine runs on."""
    entry = "{type: exec, command: [/nonexistent/program], backoff: {initial: 0.05, max: 0.1}}"
    with capture_logs() as logs:
        async with engine_from(tmp_path, pattern(tmp_path, entry)) as engine:
            await eventually(lambda: sum(e["event"] == "cannot start command" for e in logs) >= 2)
            assert exec_input(engine).state in ("restarting", "starting")


def test_restart_delay_grows_to_its_cap_and_starts_over_after_a_healthy_run() -> None:
    """Doubling from `initial` to `max` (within the jitter), `initial` again after a long run."""
    delay = RestartDelay(Backoff(initial=1.0, max=4.0, jitter=0.0, reset_after=10.0))
    assert [delay.next(0.1) for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert delay.next(60.0) == 1.0
    jittered = RestartDelay(Backoff(initial=1.0, max=4.0, jitter=0.2))
    assert 0.8 <= jittered.next(0.0) <= 1.2


async def test_without_pidfd_a_thread_sees_the_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where os.pidfd_open is missing (not Linux), runs end and restart all the same."""
    monkeypatch.delattr(os, "pidfd_open")
    entry = (
        f"{{type: exec, command: ['{PY}', '-c', 'import os; print(os.getpid())'], "
        "backoff: {initial: 0.05, max: 0.1}}"
    )
    async with engine_from(tmp_path, pattern(tmp_path, entry)) as engine:
        await eventually(lambda: exec_input(engine).runs >= 2)


async def test_env_and_cwd_reach_the_command(tmp_path: Path) -> None:
    """`env` adds variables to wireway's environment; `cwd` is the command's folder."""
    work = tmp_path / "work"
    work.mkdir()
    script = "import json, os; print(json.dumps([os.getcwd(), os.environ['SENSOR'], 'PATH' in os.environ]))"
    entry = json.dumps(
        {
            "type": "exec",
            "command": [PY, "-c", script],
            "env": {"SENSOR": "s-1"},
            "cwd": str(work),
            "restart": "no",
        }
    )
    async with engine_from(tmp_path, pattern(tmp_path, entry)):
        await eventually(lambda: len(lines_of(tmp_path / "out.jsonl")) == 1)
    assert lines_of(tmp_path / "out.jsonl") == [[str(work), "s-1", True]]
