"""The `file` output: formats with their header, rotation by size and by age, and
`mode: whole` (one file per message, written atomically)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from conftest import free_port
from support import engine_from, eventually
from wireway.config import load_pattern


def pattern(port: int, output: str) -> str:
    return f"""
pattern: {{name: fout}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {output}
settings: {{batch_size: 10}}
"""


async def send(port: int, values: list[object]) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(json.dumps(v).encode() + b"\n" for v in values))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_csv_with_header(tmp_path: Path) -> None:
    """csv: the header row first, then one row per message."""
    port, out = free_port(), tmp_path / "r.csv"
    async with engine_from(tmp_path, pattern(port, f"{{type: file, address: '{out}', format: csv}}")):
        await send(port, [{"id": 1, "v": "a"}, {"id": 2, "v": "b,c"}])
        await eventually(lambda: out.exists() and out.read_text().count("\n") == 3)
    assert out.read_text() == 'id,v\n1,a\n2,"b,c"\n'


def csv_rows(folder: Path) -> tuple[int, list[int]]:
    """How many readings-*.csv files there are (each checked to begin with its header)
    and their rows' ids, in file order."""
    files = sorted(folder.glob("readings-*.csv"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    rows: list[int] = []
    for path in files:
        lines = path.read_text().splitlines()
        assert lines[:1] == ["id,v"] or not lines  # the newest may still be empty
        rows += [int(x.split(",")[0]) for x in lines[1:]]
    return len(files), rows


async def test_rotation_by_size_each_file_with_its_header(tmp_path: Path) -> None:
    """rotate_bytes starts new files named by {n}; each csv file begins with its header."""
    port = free_port()
    entry = (
        f"{{type: file, address: '{tmp_path}/readings-{{date}}-{{n}}.csv', format: csv, rotate_bytes: 40}}"
    )
    async with engine_from(tmp_path, pattern(port, entry)):
        for start in range(0, 30, 10):
            await send(port, [{"id": i, "v": "x"} for i in range(start, start + 10)])
            await eventually(lambda s=start: len(csv_rows(tmp_path)[1]) == s + 10)
    files, rows = csv_rows(tmp_path)
    assert files >= 2
    assert rows == list(range(30))


async def test_rotation_by_age_and_restart_takes_a_new_name(tmp_path: Path) -> None:
    """rotate_seconds adds -{n} to a plain name; a restart never appends to an old file."""
    port = free_port()
    entry = f"{{type: file, address: '{tmp_path}/out.jsonl', payload_only: true, rotate_seconds: 0.2}}"
    async with engine_from(tmp_path, pattern(port, entry)):
        await send(port, [{"n": 1}])
        await eventually(lambda: (tmp_path / "out-1.jsonl").exists())
        await asyncio.sleep(0.3)
        await send(port, [{"n": 2}])
        await eventually(lambda: (tmp_path / "out-2.jsonl").exists())
    async with engine_from(tmp_path, pattern(port, entry)):
        await send(port, [{"n": 3}])
        await eventually(lambda: (tmp_path / "out-3.jsonl").exists())
    assert [(tmp_path / f"out-{n}.jsonl").read_text() for n in (1, 2, 3)] == [
        '{"n":1}\n',
        '{"n":2}\n',
        '{"n":3}\n',
    ]


async def test_whole_writes_one_file_per_message_atomically(tmp_path: Path) -> None:
    """mode: whole: one complete file per message, no temporary file left behind."""
    port, folder = free_port(), tmp_path / "msgs"
    entry = f"{{type: file, mode: whole, address: '{folder}/{{id}}.json', payload_only: true}}"
    async with engine_from(tmp_path, pattern(port, entry)):
        await send(port, [{"n": i} for i in range(5)])
        await eventually(lambda: folder.exists() and len(list(folder.glob("*.json"))) == 5)
    assert sorted(json.loads(p.read_text())["n"] for p in folder.glob("*.json")) == list(range(5))
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


async def test_text_lines_and_whole_csv_files(tmp_path: Path) -> None:
    """format: text writes the payload strings as lines; whole csv files each have a header."""
    port, lines, folder = free_port(), tmp_path / "log.txt", tmp_path / "rows"
    text = f"""
pattern: {{name: fout}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{type: file, name: lines, address: '{lines}', format: text, when: "type(payload) == string"}}
    - {{type: file, name: rows, mode: whole, address: '{folder}/row-{{n}}.csv', format: csv,
        when: "type(payload) != string"}}
"""
    async with engine_from(tmp_path, text):
        await send(port, ["first line", {"a": 1, "b": "x"}, "second line", {"a": 2, "b": "y"}])
        await eventually(lambda: lines.exists() and lines.read_text().count("\n") == 2)
        await eventually(lambda: (folder / "row-2.csv").exists())
    assert lines.read_text() == "first line\nsecond line\n"
    assert (folder / "row-1.csv").read_text() == "a,b\n1,x\n"
    assert (folder / "row-2.csv").read_text() == "a,b\n2,y\n"


def test_bad_output_options_are_named(tmp_path: Path) -> None:
    """A template without a placeholder in whole mode, an unknown placeholder, {id} in append mode."""
    cases = [
        ("{type: file, mode: whole, address: out.json}", "needs a name template"),
        ("{type: file, address: 'out-{day}.json'}", "unknown placeholder"),
        ("{type: file, address: 'out-{id}.json'}", "mode: whole"),
        ("{type: file, address: 'out-{date}.json', rotate_bytes: 100}", "needs {n}"),
    ]
    for entry, words in cases:
        path = tmp_path / "p.yaml"
        path.write_text(pattern(7000, entry))
        loaded, errors = load_pattern(path)
        assert loaded is None
        assert any(words in str(e) and "address" in str(e) for e in errors), [str(e) for e in errors]
