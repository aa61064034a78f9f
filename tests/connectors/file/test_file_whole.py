"""The `file` input, `mode: whole`: settled files in, then moved to done/ or failed/, or deleted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from support import engine_from, eventually, written_lines
from wireway.runtime.dlq import DlqAdmin


def pattern(glob: str, out: Path, extra: str = "", fmt: str = "json") -> str:
    return f"""
pattern: {{name: whole}}
interfaces:
  input:
    - {{type: file, mode: whole, path: "{glob}", format: {fmt}, settle: 0.2, poll_interval: 0.2{extra}}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""


def seen(out: Path) -> list[Any]:
    return written_lines(out)


async def test_each_file_is_one_message_then_done(tmp_path: Path) -> None:
    """A json file is one message; once stored it moves to done/; a broken one to failed/."""
    inbox, out = tmp_path / "inbox", tmp_path / "out.jsonl"
    inbox.mkdir()
    (inbox / "a.json").write_text('{"order": 1}')
    async with engine_from(tmp_path, pattern(f"{inbox}/*.json", out)):
        await eventually(lambda: (inbox / "done" / "a.json").exists())
        (inbox / "b.json").write_text('{"order": 2, "lines": [1, 2]}')
        (inbox / "c.json").write_text("{broken")
        await eventually(lambda: (inbox / "failed" / "c.json").exists())
        await eventually(lambda: (inbox / "done" / "b.json").exists())
    assert sorted(v["order"] for v in seen(out)) == [1, 2]
    assert sorted(p.name for p in inbox.iterdir()) == ["done", "failed"]
    (letter,) = DlqAdmin(tmp_path / "data" / "buffer.db").list("whole")
    assert letter["reason"].startswith(f"{inbox / 'c.json'}: invalid JSON")


async def test_lines_format_one_message_per_row_and_delete(tmp_path: Path) -> None:
    """With csv each row is a message; `after: delete` removes the file once stored."""
    inbox, out = tmp_path / "inbox", tmp_path / "out.jsonl"
    inbox.mkdir()
    (inbox / "r.csv").write_text("id,v\n1,a\n2,b\n3,c")  # no newline after the last row
    async with engine_from(tmp_path, pattern(f"{inbox}/*.csv", out, ", after: delete", "csv")):
        await eventually(lambda: not (inbox / "r.csv").exists())
        await eventually(lambda: len(seen(out)) == 3)
    assert seen(out) == [{"id": "1", "v": "a"}, {"id": "2", "v": "b"}, {"id": "3", "v": "c"}]
    assert list(inbox.iterdir()) == []


async def test_waits_until_the_file_settles(tmp_path: Path) -> None:
    """A file still growing is not read; once it stays the same for `settle`, it is."""
    inbox, out = tmp_path / "inbox", tmp_path / "out.jsonl"
    inbox.mkdir()
    text = pattern(f"{inbox}/*.jsonl", out, "", "jsonl").replace("settle: 0.2", "settle: 0.6")
    async with engine_from(tmp_path, text):
        path = inbox / "x.jsonl"
        with path.open("w") as f:
            for i in range(5):
                f.write(json.dumps({"n": i}) + "\n")
                f.flush()
                await asyncio.sleep(0.2)  # the engine looks meanwhile
                assert not (inbox / "done" / "x.jsonl").exists()
        await eventually(lambda: (inbox / "done" / "x.jsonl").exists())
        await eventually(lambda: len(seen(out)) == 5)
    assert [v["n"] for v in seen(out)] == [0, 1, 2, 3, 4]


async def test_bad_row_sends_the_file_to_failed(tmp_path: Path) -> None:
    """Good rows are delivered, the bad one is dead-lettered, the file goes to failed/."""
    inbox, out = tmp_path / "in", tmp_path / "out.jsonl"
    inbox.mkdir()
    (inbox / "m.jsonl").write_text('{"n": 1}\nnope\n{"n": 3}\n')
    async with engine_from(tmp_path, pattern(f"{inbox}/*.jsonl", out, "", "jsonl")) as engine:
        await eventually(lambda: (inbox / "failed" / "m.jsonl").exists())
        await eventually(lambda: len(seen(out)) == 2)
        assert engine.sqlite is not None
        assert engine.sqlite.dlq_depth("whole") == 1
