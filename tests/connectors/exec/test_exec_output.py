"""The `exec` output with real processes: a long-running command's stdin, restarted when it
exits, and one run per message whose exit code confirms, retries or dead-letters it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from conftest import free_port, wireway
from support import engine_from, eventually, written_lines
from wireway.connectors.exec.output import ExecOutput
from wireway.runtime.dlq import DlqAdmin

PY = sys.executable


def lines_of(path: Path) -> list[Any]:
    return written_lines(path)


async def send(port: int, values: list[Any]) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(json.dumps(v).encode() + b"\n" for v in values))
    await writer.drain()
    writer.close()
    # bounded: a peer that stopped reading must fail the test, not hang the suite
    await asyncio.wait_for(writer.wait_closed(), 10)


def pattern(port: int, entry: dict[str, Any], settings: str = "{}") -> str:
    return f"""
pattern: {{name: exec-out}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {json.dumps(entry)}
settings: {settings}
"""


async def test_lines_reach_a_long_running_command(tmp_path: Path) -> None:
    """`cat >> file` gets one encoded record per line, the envelope or the payload."""
    port, out = free_port(), tmp_path / "out.jsonl"
    entry = {"type": "exec", "command": f"cat >> '{out}'", "shell": True, "payload_only": True}
    async with engine_from(tmp_path, pattern(port, entry)) as engine:
        await send(port, [{"n": i} for i in range(100)])
        await eventually(lambda: len(lines_of(out)) == 100)
        assert engine.health()["services"]["exec:exec-out.exec"] == "up"
    assert lines_of(out) == [{"n": i} for i in range(100)]


async def test_a_command_that_exits_is_restarted_and_writes_meanwhile_are_retried(tmp_path: Path) -> None:
    """A command that handles one line per run: a message sent while it is gone (waiting
    out its backoff) is retried and reaches the next run."""
    port, out = free_port(), tmp_path / "out.jsonl"
    script = f"import sys\nwith open({str(out)!r}, 'a') as f: f.write(sys.stdin.readline())"
    entry = {
        "type": "exec",
        "command": [PY, "-c", script],
        "payload_only": True,
        "backoff": {"initial": 0.3, "max": 0.3, "jitter": 0},
    }
    settings = "{retries: 100, backoff_base: 0.02, backoff_max: 0.05, breaker_threshold: 1000}"
    async with engine_from(tmp_path, pattern(port, entry, settings)) as engine:
        route = engine.runners[0].routes[0]
        output = route.output
        assert isinstance(output, ExecOutput)
        for i in range(3):
            await send(port, [{"n": i}])
            await eventually(lambda i=i: len(lines_of(out)) == i + 1)
            # the run has exited and the next one waits out its backoff: the next
            # message finds no command (a line sent to one that is exiting is lost)
            await eventually(lambda: output.child is None)
        assert "not running" in route.last_error or "stopped reading" in route.last_error
        assert route.failed == 0
    assert lines_of(out) == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_per_message_runs_confirm_retry_and_dead_letter(tmp_path: Path) -> None:
    """One run per message, the record on stdin and in the environment: exit 0 confirms,
    a failing exit is retried, a code in dead_letter_codes goes to the DLQ."""
    port, log = free_port(), tmp_path / "runs.jsonl"
    script = f"""
import json, os, sys
record = json.loads(sys.stdin.read())
env = json.loads(os.environ["WIREWAY_PAYLOAD"])
assert record["payload"] == env
seen = {str(log)!r}
with open(seen, "a") as f:
    f.write(json.dumps({{"id": os.environ["WIREWAY_MESSAGE_ID"], "n": env["n"],
                        "retry": int(os.environ["WIREWAY_RETRY_COUNT"])}}) + "\\n")
if env["n"] == 2:
    sys.exit(7)
if env["n"] == 3 and os.environ["WIREWAY_RETRY_COUNT"] == "0":
    sys.exit(1)
"""
    entry = {
        "type": "exec",
        "command": [PY, "-c", script],
        "per_message": True,
        "dead_letter_codes": [7],
        "batch_size": 1,
    }
    settings = "{retries: 3, backoff_base: 0.02, backoff_max: 0.05}"
    async with engine_from(tmp_path, pattern(port, entry, settings)) as engine:
        await send(port, [{"n": 1}, {"n": 2}, {"n": 3}])
        route = engine.runners[0].routes[0]
        await eventually(lambda: route.delivered == 2 and route.failed == 1, timeout=30)
    runs = lines_of(log)
    assert [(r["n"], r["retry"]) for r in runs] == [(1, 0), (2, 0), (3, 0), (3, 1)]
    assert runs[2]["id"] == runs[3]["id"]  # the same message, tried again
    (letter,) = DlqAdmin(tmp_path / "data" / "buffer.db").list("exec-out")
    assert "exited with code 7" in letter["reason"]


async def test_per_message_run_that_takes_too_long_is_killed(tmp_path: Path) -> None:
    """Past `timeout` the run is killed and the message retried, then dead-lettered."""
    port = free_port()
    entry = {
        "type": "exec",
        "command": [PY, "-c", "import time; time.sleep(60)"],
        "per_message": True,
        "timeout": 0.3,
        "stop_timeout": 0.5,
    }
    async with engine_from(tmp_path, pattern(port, entry, "{retries: 0}")) as engine:
        await send(port, [{"n": 1}])
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("exec-out") == 1)
    (letter,) = DlqAdmin(tmp_path / "data" / "buffer.db").list("exec-out")
    assert "took longer than 0.3s" in letter["reason"]


def test_bad_options_are_errors_at_their_key(tmp_path: Path) -> None:
    """`wireway check` names the key of each bad exec, pipe or stdin option, on its line."""
    text = """pattern: {name: bad}
interfaces:
  input:
    - {type: exec, command: "ls -l"}
    - {type: exec, command: [ls], backoff: {initial: 2, max: 1}}
    - {type: exec, command: [ls], restart: sometimes}
    - {type: pipe, path: x.fifo, mode: "999"}
    - {type: stdin, fd: -1}
  output:
    - {type: exec, command: [cat], dead_letter_codes: [0]}
    - {type: exec, command: [cat], shell: true}
    - {type: pipe, path: "dir/"}
"""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = wireway("check", str(path))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    for where in [
        "bad.yaml:4 interfaces.input[0].command: expected a list",
        "bad.yaml:5 interfaces.input[1].backoff.max: must not be less than `initial`",
        "bad.yaml:6 interfaces.input[2].restart:",
        "bad.yaml:7 interfaces.input[3].mode: expected permissions in octal",
        "bad.yaml:8 interfaces.input[4].fd:",
        "bad.yaml:10 interfaces.output[0].dead_letter_codes: 0 is not a failing exit code",
        "bad.yaml:11 interfaces.output[1].command: with `shell: true`, the command is one string",
        "bad.yaml:12 interfaces.output[2].path: expected the path of a named pipe",
    ]:
        assert where in output, output


async def test_a_command_that_stops_reading_is_restarted_after_the_delivery_timeout(tmp_path: Path) -> None:
    """A full stdin pipe is waited on without blocking wireway; past the pattern's timeout
    the command (its stream may end in half a record) is ended and started again."""
    port = free_port()
    entry = {
        "type": "exec",
        "command": [PY, "-c", "import time; time.sleep(300)"],  # never reads its stdin
        "backoff": {"initial": 0.05, "max": 0.1},
        "stop_timeout": 0.5,
    }
    settings = "{timeout: 0.5, retries: 100, backoff_base: 0.05, backoff_max: 0.1}"
    async with asyncio.timeout(60), engine_from(tmp_path, pattern(port, entry, settings)) as engine:
        route = engine.runners[0].routes[0]
        output = route.output
        assert isinstance(output, ExecOutput)
        await eventually(lambda: output.child is not None)
        assert output.child is not None
        first = output.child.pid
        await send(port, [{"pad": "x" * 1000, "n": i} for i in range(200)])  # more than a pipe holds
        await eventually(lambda: route.last_error == "timeout after 0.5s")
        await eventually(lambda: output.child is not None and output.child.pid != first)


async def test_at_stop_the_command_reads_what_it_was_given(tmp_path: Path) -> None:
    """Closing the output ends the command's stdin and lets it finish before any signal:
    a slow reader still writes every line it was handed."""
    port, out = free_port(), tmp_path / "out.jsonl"
    script = (
        "import sys, time\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    for line in sys.stdin:\n"
        "        time.sleep(0.01); f.write(line); f.flush()"
    )
    entry = {"type": "exec", "command": [PY, "-u", "-c", script], "payload_only": True}
    async with engine_from(tmp_path, pattern(port, entry)) as engine:
        route = engine.runners[0].routes[0]
        await send(port, [{"n": i} for i in range(50)])
        await eventually(lambda: route.delivered == 50)  # in the pipe, mostly not read yet
        assert len(lines_of(out)) < 50
    assert lines_of(out) == [{"n": i} for i in range(50)]
