"""`kill -9` a real `wireway run` tailing a growing file, several times: no line is lost,
and lines read again are few and carry the same messageId."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from conftest import free_port
from wireway.connectors.file.follow import CHUNK

TOTAL = 6000
KILLS = 4
BATCH = 200  # the output's batch_size


def start(tmp: Path, pattern: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "wireway", "run", str(pattern), "--data-dir", str(tmp / "data")]
    cmd += ["--http", f"127.0.0.1:{free_port()}", "--log-level", "WARNING"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def lines_of(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    # a kill may leave the output's last line half written
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]


def test_kill_9_loses_nothing(tmp_path: Path) -> None:
    """A writer appends rows while wireway is killed with SIGKILL and restarted 4 times."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("")
    pattern = tmp_path / "p.yaml"
    pattern.write_text(f"""
pattern: {{name: killtail}}
interfaces:
  input:
    - {{type: file, path: "{src}", format: jsonl, poll_interval: 0.2}}
  output:
    - {{type: file, address: "{out}", fsync: batch}}
settings: {{batch_size: {BATCH}}}
""")
    done = threading.Event()

    def writer() -> None:
        with src.open("a") as f:
            for i in range(TOTAL):
                f.write(json.dumps({"n": i, "pad": "x" * 20}) + "\n")
                if i % 20 == 0:
                    f.flush()
                    time.sleep(0.01)
        done.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    for _ in range(KILLS):
        proc = start(tmp_path, pattern)
        time.sleep(0.8)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert done.wait(30)
    proc = start(tmp_path, pattern)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if {v["payload"]["n"] for v in lines_of(out)} >= set(range(TOTAL)):  # type: ignore[index]
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    got = lines_of(out)
    counts = Counter(v["payload"]["n"] for v in got)  # type: ignore[index]
    assert set(counts) == set(range(TOTAL)), f"lost {sorted(set(range(TOTAL)) - set(counts))[:10]}"
    duplicates = sum(counts.values()) - TOTAL
    line_bytes = len(json.dumps({"n": 0, "pad": "x" * 20})) + 1
    print(f"{duplicates} duplicates after {KILLS} kills")
    assert duplicates <= KILLS * (CHUNK // line_bytes + BATCH)
    ids: dict[int, str] = {}
    for v in got:
        n, mid = v["payload"]["n"], v["messageId"]  # type: ignore[index]
        assert ids.setdefault(n, mid) == mid, f"line {n} read again with another messageId"  # type: ignore[arg-type]


def test_kill_9_in_whole_mode(tmp_path: Path) -> None:
    """Files dropped into a folder while wireway is killed and restarted: every file's rows
    arrive, and every file ends in done/."""
    inbox, out = tmp_path / "inbox", tmp_path / "out.jsonl"
    inbox.mkdir()
    pattern = tmp_path / "p.yaml"
    pattern.write_text(f"""
pattern: {{name: killwhole}}
interfaces:
  input:
    - {{type: file, mode: whole, path: "{inbox}/*.jsonl", format: jsonl, settle: 0.1, poll_interval: 0.2}}
  output:
    - {{type: file, address: "{out}"}}
""")
    files = 60
    done = threading.Event()

    def dropper() -> None:
        for k in range(files):
            tmp = inbox / f".f{k}.tmp"
            tmp.write_text("".join(json.dumps({"n": k * 100 + i}) + "\n" for i in range(100)))
            tmp.rename(inbox / f"f{k}.jsonl")
            time.sleep(0.04)
        done.set()

    threading.Thread(target=dropper, daemon=True).start()
    for _ in range(3):
        proc = start(tmp_path, pattern)
        time.sleep(0.9)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert done.wait(30)
    proc = start(tmp_path, pattern)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(list((inbox / "done").glob("*.jsonl"))) == files:
                break
            time.sleep(0.1)
        time.sleep(0.5)  # the last file's messages reach the output
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert sorted(p.name for p in inbox.glob("*.jsonl")) == []
    assert len(list((inbox / "done").glob("*.jsonl"))) == files
    got = {v["payload"]["n"] for v in lines_of(out)}  # type: ignore[index]
    assert got == set(range(files * 100))
