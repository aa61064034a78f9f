"""The `file` input, `mode: tail`: live appends, partial lines, rotation, truncation,
replacement, globs (newest and all), and positions kept across restarts."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from support import check_fails_at, engine_from, eventually, written_lines
from wireway.config import load_pattern
from wireway.runtime.dlq import DlqAdmin


def pattern(src: str, out: Path, extra: str = "", fmt: str = "jsonl") -> str:
    return f"""
pattern: {{name: tail}}
interfaces:
  input:
    - {{type: file, path: "{src}", format: {fmt}, poll_interval: 0.2, rotate_wait: 0.2{extra}}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""


def seen(out: Path) -> list[Any]:
    return written_lines(out)


def numbers(out: Path) -> list[int]:
    return [v["n"] for v in seen(out)]


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def rows(start: int, stop: int) -> str:
    return "".join(json.dumps({"n": i}) + "\n" for i in range(start, stop))


async def test_live_appends_row_by_row(tmp_path: Path) -> None:
    """Another thread appends one row at a time, flushing each: every row arrives, in order."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("")
    async with engine_from(tmp_path, pattern(src, out)):

        def writer() -> None:
            with src.open("a") as f:
                for i in range(200):
                    f.write(json.dumps({"n": i}) + "\n")
                    f.flush()
                    if i % 20 == 0:
                        time.sleep(0.01)

        thread = threading.Thread(target=writer)
        thread.start()
        thread.join(10)
        await eventually(lambda: len(seen(out)) >= 200)
    assert numbers(out) == list(range(200))


async def test_a_linger_gathers_rows_that_come_close_together(tmp_path: Path) -> None:
    """With `linger: 0.05`, rows written a few ms apart are read as fewer batches than
    rows, and every row arrives, in order."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("")
    async with engine_from(tmp_path, pattern(src, out, ", linger: 0.05")) as engine:
        reader = engine.runners[0].inputs[0]
        batches: list[int] = []
        ingest = reader.reader.ctx.ingest  # type: ignore[attr-defined]

        async def counted(values: list[Any], **kwargs: Any) -> Any:
            if values:
                batches.append(len(values))
            return await ingest(values, **kwargs)

        reader.reader.ctx.ingest = counted  # type: ignore[attr-defined]

        def writer() -> None:
            with src.open("a") as f:
                for i in range(40):
                    f.write(json.dumps({"n": i}) + "\n")
                    f.flush()
                    time.sleep(0.002)

        await asyncio.to_thread(writer)
        await eventually(lambda: len(seen(out)) >= 40)
    assert numbers(out) == list(range(40))
    assert len(batches) < 40, batches


def test_linger_is_bounded(tmp_path: Path) -> None:
    text = pattern(tmp_path / "in.jsonl", tmp_path / "out.jsonl", ", linger: 2")
    check_fails_at(text, tmp_path, 5, "linger")


async def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    """A last line without its newline is not read until the newline comes."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(rows(0, 2) + '{"n": ')
    async with engine_from(tmp_path, pattern(src, out)):
        await eventually(lambda: len(seen(out)) == 2)
        await asyncio.sleep(0.3)
        assert len(seen(out)) == 2
        append(src, "2}\n")
        await eventually(lambda: len(seen(out)) == 3)
    assert numbers(out) == [0, 1, 2]


async def test_rotation_reads_the_old_file_to_its_end(tmp_path: Path) -> None:
    """Rename the file away, write a last line to the old one, start a new file: all arrive."""
    src, out = tmp_path / "app.log", tmp_path / "out.jsonl"
    src.write_text(rows(0, 5))
    async with engine_from(tmp_path, pattern(src, out)):
        await eventually(lambda: len(seen(out)) == 5)
        with src.open("a") as old:
            os.rename(src, tmp_path / "app.log.1")
            old.write(rows(5, 7))  # the writer has not reopened yet
        src.write_text(rows(7, 10))
        await eventually(lambda: len(seen(out)) == 10)
    assert sorted(numbers(out)) == list(range(10))
    assert numbers(out)[:7] == list(range(7))


async def test_truncation_starts_again(tmp_path: Path) -> None:
    """A file cut to zero and written again is read from its start."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(rows(0, 5))
    async with engine_from(tmp_path, pattern(src, out)):
        await eventually(lambda: len(seen(out)) == 5)
        with src.open("r+") as f:
            f.truncate(0)
        src.write_text(rows(100, 102))
        await eventually(lambda: len(seen(out)) == 7)
    assert numbers(out) == [0, 1, 2, 3, 4, 100, 101]


async def test_replacement_by_a_new_file(tmp_path: Path) -> None:
    """A new file renamed over the followed one (a new inode) is read from its start."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(rows(0, 3))
    async with engine_from(tmp_path, pattern(src, out)):
        await eventually(lambda: len(seen(out)) == 3)
        tmp = tmp_path / "in.jsonl.new"
        tmp.write_text(rows(10, 14))
        os.replace(tmp, src)
        await eventually(lambda: len(seen(out)) == 7)
    assert numbers(out) == [0, 1, 2, 10, 11, 12, 13]


async def test_glob_follows_the_newest_file(tmp_path: Path) -> None:
    """With a glob, only the newest file is read; a newer one takes over after the old is read out."""
    logs, out = tmp_path / "logs", tmp_path / "out.jsonl"
    logs.mkdir()
    old = logs / "run-1.jsonl"
    old.write_text(rows(0, 3))
    os.utime(old, (time.time() - 100, time.time() - 100))
    current = logs / "run-2.jsonl"
    current.write_text(rows(10, 13))
    async with engine_from(tmp_path, pattern(f"{logs}/run-*.jsonl", out)):
        await eventually(lambda: len(seen(out)) == 3)
        append(current, rows(13, 15))
        newer = logs / "run-3.jsonl"
        newer.write_text(rows(20, 22))
        await eventually(lambda: len(seen(out)) == 7)
        append(newer, rows(22, 23))
        await eventually(lambda: len(seen(out)) == 8)
    assert numbers(out) == [10, 11, 12, 13, 14, 20, 21, 22]


async def test_glob_all_follows_every_file(tmp_path: Path) -> None:
    """`all: true` reads every match, and files that appear later from their start."""
    logs, out = tmp_path / "logs", tmp_path / "out.jsonl"
    logs.mkdir()
    (logs / "a.jsonl").write_text(rows(0, 3))
    (logs / "b.jsonl").write_text(rows(10, 13))
    async with engine_from(tmp_path, pattern(f"{logs}/*.jsonl", out, ", all: true")):
        await eventually(lambda: len(seen(out)) == 6)
        (logs / "c.jsonl").write_text(rows(20, 22))
        append(logs / "a.jsonl", rows(3, 4))
        await eventually(lambda: len(seen(out)) == 9)
    assert sorted(numbers(out)) == [0, 1, 2, 3, 10, 11, 12, 20, 21]


async def test_restart_resumes_and_start_end(tmp_path: Path) -> None:
    """`start: end` skips what was there at the first run; a restart resumes where it stopped,
    including lines written while it was down."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(rows(0, 5))
    text = pattern(src, out, ", start: end")
    async with engine_from(tmp_path, text):
        await eventually(lambda: (tmp_path / "data").exists())
        await asyncio.sleep(0.3)
        append(src, rows(5, 8))
        await eventually(lambda: len(seen(out)) == 3)
    append(src, rows(8, 10))
    async with engine_from(tmp_path, text):
        append(src, rows(10, 11))
        await eventually(lambda: len(seen(out)) == 6)
    assert numbers(out) == list(range(5, 11))


async def test_bad_lines_go_to_the_dlq_with_file_and_line(tmp_path: Path) -> None:
    """A line that is not JSON is dead-lettered naming its file and line; file_field/line_field tag payloads."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"n": 0}\nnot json\n{"n": 2}\n')
    text = pattern(src, out, ", file_field: file, line_field: line")
    async with engine_from(tmp_path, text) as engine:
        await eventually(lambda: len(seen(out)) == 2)
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("tail") == 1)
    assert seen(out) == [{"n": 0, "file": str(src), "line": 1}, {"n": 2, "file": str(src), "line": 3}]
    rows_ = DlqAdmin(tmp_path / "data" / "buffer.db").list("tail")
    assert rows_[0]["reason"].startswith(f"{src} line 2: invalid JSON")


async def test_csv_resumes_with_its_header(tmp_path: Path) -> None:
    """A csv file resumed mid-way still maps its rows by the header row."""
    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    src.write_text("a,b\n1,2\n")
    text = pattern(src, out, fmt="csv")
    async with engine_from(tmp_path, text):
        await eventually(lambda: len(seen(out)) == 1)
    append(src, "3,4\n")
    async with engine_from(tmp_path, text):
        await eventually(lambda: len(seen(out)) == 2)
    assert seen(out) == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


async def test_rotated_while_stopped_is_read_to_its_end(tmp_path: Path) -> None:
    """Lines added to the file, which is then renamed away while wireway is down, are read
    at the next start (found by its inode), then the new file."""
    src, out = tmp_path / "app.log", tmp_path / "out.jsonl"
    src.write_text(rows(0, 3))
    text = pattern(src, out)
    async with engine_from(tmp_path, text):
        await eventually(lambda: len(seen(out)) == 3)
    append(src, rows(3, 5))
    os.rename(src, tmp_path / "app.log.1")
    src.write_text(rows(5, 7))
    async with engine_from(tmp_path, text):
        await eventually(lambda: len(seen(out)) == 7)
    assert numbers(out) == list(range(7))


async def test_two_inputs_keep_their_own_positions(tmp_path: Path) -> None:
    """Two inputs of one pattern following the same file each read every line."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(rows(0, 3))
    text = f"""
pattern: {{name: twice}}
interfaces:
  input:
    - {{type: file, name: a, path: "{src}", format: jsonl}}
    - {{type: file, name: b, path: "{src}", format: jsonl}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""
    async with engine_from(tmp_path, text):
        await eventually(lambda: len(seen(out)) == 6)
    append(src, rows(3, 4))
    async with engine_from(tmp_path, text):
        await eventually(lambda: len(seen(out)) == 8)
    assert sorted(numbers(out)) == [0, 0, 1, 1, 2, 2, 3, 3]


async def test_cut_and_written_longer_starts_again(tmp_path: Path) -> None:
    """A file cut and at once written longer than before (its first bytes differ) is read
    from its start, not from the old offset."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(rows(0, 3))
    async with engine_from(tmp_path, pattern(src, out)):
        await eventually(lambda: len(seen(out)) == 3)
        src.write_text(rows(100, 110))  # truncates and writes in one go
        await eventually(lambda: len(seen(out)) == 13)
    assert numbers(out) == [0, 1, 2, *range(100, 110)]


async def test_followed_by_polling_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where there is no inotify (here forced off), changes are found by polling."""
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(rows(0, 2))
    async with engine_from(tmp_path, pattern(src, out)):
        await eventually(lambda: len(seen(out)) == 2)
        append(src, rows(2, 4))
        await eventually(lambda: len(seen(out)) == 4)
    assert numbers(out) == [0, 1, 2, 3]


def test_bad_input_options_are_named(tmp_path: Path) -> None:
    """A folder instead of a file, a key that is not a plain name, an unknown mode."""
    cases = [
        ('{type: file, path: "logs/"}', "path"),
        ('{type: file, path: "a.log", file_field: "a.b"}', "file_field"),
        ('{type: file, path: "a.log", mode: stream}', "mode"),
    ]
    for entry, key in cases:
        path = tmp_path / "p.yaml"
        path.write_text(
            f"pattern: {{name: bad}}\ninterfaces:\n  input:\n    - {entry}\n  output:\n    - {{type: stdout}}\n"
        )
        loaded, errors = load_pattern(path)
        assert loaded is None
        assert any(key in str(e) and "p.yaml:4" in str(e) for e in errors), [str(e) for e in errors]


async def test_renamed_within_the_glob_is_not_read_again(tmp_path: Path) -> None:
    """all: true: a file renamed to another matching name goes on from where it was."""
    logs, out = tmp_path / "logs", tmp_path / "out.jsonl"
    logs.mkdir()
    (logs / "a.jsonl").write_text(rows(0, 3))
    async with engine_from(tmp_path, pattern(f"{logs}/*.jsonl", out, ", all: true")):
        await eventually(lambda: len(seen(out)) == 3)
        os.rename(logs / "a.jsonl", logs / "b.jsonl")
        await asyncio.sleep(0.5)  # past rotate_wait: a file left for good would be closed now
        append(logs / "b.jsonl", rows(3, 5))
        await eventually(lambda: len(seen(out)) == 5)
        await asyncio.sleep(0.3)
    assert numbers(out) == list(range(5))
