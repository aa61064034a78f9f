"""Hostile and broken files through the `file` tail input, `format: csv` and `format:
wiglecsv`: broken quoting, wrong column counts, a header alone, a file cut and written
again under the tail, a 50 MB line without a newline, binary bytes, garbled WiGLE rows.

Every case: the good rows around the bad ones arrive, each bad row is in the DLQ with
its file, line and reason, `wireway_messages_total{outcome="dead_letter"}` counts it
(or, for a WiGLE row without a position, `wireway_records_skipped_total`), and the
process stays up. The 50 MB line runs a real `wireway run` and watches its memory.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fault_harness import Wireway
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from support import engine_from, eventually, written_lines
from wireway.observability.metrics import REGISTRY
from wireway.runtime.dlq import DlqAdmin
from wireway.runtime.engine import Engine

WIGLE_PREHEADER = "WigleWifi-1.4,appRelease=Kismet202208R1,model=Kismet,release=2022.08.R1,device=kismet\n"
WIGLE_HEADER = (
    "MAC,SSID,AuthMode,FirstSeen,Channel,RSSI,CurrentLatitude,CurrentLongitude,"
    "AltitudeMeters,AccuracyMeters,Type\n"
)
BIG_LINE = 50 * 1024 * 1024
RSS_LIMIT = 200 * 1024 * 1024


# Prometheus counters live as long as the test process: the pattern names of this module
# are its own, so its counts are not another test's
PREFIX = "hostile-"


def pattern(name: str, src: Path, out: Path, fmt: str, extra: str = "") -> str:
    return f"""
pattern: {{name: {PREFIX}{name}}}
interfaces:
  input:
    - {{type: file, path: "{src}", format: {fmt}, poll_interval: 0.2, line_field: line{extra}}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""


def seen(out: Path) -> list[dict[str, Any]]:
    return written_lines(out)


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def wigle_row(mac: str, rssi: str = "-50", lat: str = "52.1", lon: str = "4.3") -> str:
    return f"{mac},net,[WPA2],2026-12-04 10:00:00,6,{rssi},{lat},{lon},3,4,WIFI\n"


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def dead_letters(engine_or_url: Engine | str, pattern_name: str) -> float:
    """`wireway_messages_total{outcome="dead_letter"}` of a pattern: from a process's
    /metrics, or from the registry an in-process engine serves it from."""
    if isinstance(engine_or_url, str):
        text = httpx.get(f"{engine_or_url}/metrics", timeout=10, trust_env=False).text
    else:
        text = generate_latest(REGISTRY).decode()
    return metric(text, "wireway_messages_total", pattern=PREFIX + pattern_name, outcome="dead_letter")


def reasons(tmp: Path, pattern_name: str) -> list[str]:
    return sorted(row["reason"] for row in DlqAdmin(tmp / "data" / "buffer.db").list(PREFIX + pattern_name))


def skipped_no_fix() -> float:
    labels = {"format": "wiglecsv", "reason": "no_fix"}
    return REGISTRY.get_sample_value("wireway_records_skipped_total", labels) or 0.0


async def test_csv_unclosed_quote_is_one_bad_row(tmp_path: Path) -> None:
    """An unclosed quote is the error of its own line: the rows after it still arrive."""
    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    src.write_text('n,v\n1,x\n2,"open quote, never closed\n3,y\n4,"two\nlines"\n5,z\n')
    async with engine_from(tmp_path, pattern("quotes", src, out, "csv")) as engine:
        await eventually(lambda: len(seen(out)) == 3)
        await eventually(lambda: dead_letters(engine, "quotes") == 3)
        assert engine.sqlite is not None
        assert engine.sqlite.dlq_depth(PREFIX + "quotes") == 3
    assert [(r["n"], r["line"]) for r in seen(out)] == [("1", 2), ("3", 4), ("5", 7)]
    got = reasons(tmp_path, "quotes")
    assert got[0] == f"{src} line 3: malformed CSV: unexpected end of data"
    assert got[1] == f"{src} line 5: malformed CSV: unexpected end of data"
    assert got[2].startswith(f"{src} line 6: ")  # `lines"`: one field, or a stray quote


async def test_csv_wrong_column_counts(tmp_path: Path) -> None:
    """Rows with too many or too few fields go to the DLQ; the rows around them arrive."""
    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    src.write_text("n,v\n1,a\n2,b,extra\n3\n4,d\n,,,,\n5,e\n")
    async with engine_from(tmp_path, pattern("columns", src, out, "csv")) as engine:
        await eventually(lambda: len(seen(out)) == 3)
        await eventually(lambda: dead_letters(engine, "columns") == 3)
    assert [r["n"] for r in seen(out)] == ["1", "4", "5"]
    assert reasons(tmp_path, "columns") == [
        f"{src} line 3: 3 fields, expected 2",
        f"{src} line 4: 1 fields, expected 2",
        f"{src} line 6: 5 fields, expected 2",
    ]


async def test_csv_header_only(tmp_path: Path) -> None:
    """A file with only its header (and an empty one): no message, no error; rows
    appended later are mapped by that header."""
    src, empty, out = tmp_path / "in.csv", tmp_path / "empty.csv", tmp_path / "out.jsonl"
    src.write_text("n,v\n")
    empty.write_text("")
    text = pattern("header", src, out, "csv").replace(
        "  output:",
        f'    - {{type: file, name: empty, path: "{empty}", format: csv, poll_interval: 0.2}}\n  output:',
    )
    async with engine_from(tmp_path, text) as engine:
        await eventually(lambda: engine.health()["status"] == "healthy")
        await asyncio.sleep(0.5)  # a few polls of both files
        assert seen(out) == []
        assert dead_letters(engine, "header") == 0
        append(src, b"1,a\n")
        await eventually(lambda: len(seen(out)) == 1)
        assert engine.health()["status"] == "healthy"
    assert seen(out) == [{"n": "1", "v": "a", "line": 2}]


async def test_csv_truncated_and_rewritten_while_tailed(tmp_path: Path) -> None:
    """Cut and written again (at once, or empty first): the new content is read from its
    start, with its header; nothing of the old content arrives twice."""
    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    src.write_text("n,v\n" + "".join(f"{i},old\n" for i in range(5)))
    async with engine_from(tmp_path, pattern("rewrite", src, out, "csv")) as engine:
        await eventually(lambda: len(seen(out)) == 5)
        src.write_text("v,n\n" + "".join(f"new,{i}\n" for i in range(100, 103)))  # shorter, new header
        await eventually(lambda: len(seen(out)) == 8)
        src.write_text("")
        await asyncio.sleep(0.5)  # the tail sees it empty
        append(src, b"n,v\n" + b"".join(b"%d,again\n" % i for i in range(200, 210)))  # longer than before
        await eventually(lambda: len(seen(out)) == 18)
        await asyncio.sleep(0.3)
        assert dead_letters(engine, "rewrite") == 0
    numbers = [int(r["n"]) for r in seen(out)]
    assert numbers == [*range(5), *range(100, 103), *range(200, 210)]
    assert {r["v"] for r in seen(out)[5:8]} == {"new"}


@pytest.mark.parametrize("fmt", ["csv", "wiglecsv"])
async def test_binary_bytes_appended(tmp_path: Path, fmt: str) -> None:
    """Random bytes (never UTF-8: each of their lines holds a 0xff) between good rows:
    each of their lines is dead-lettered with its reason; no garbage row is delivered
    and the rows after them arrive."""
    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    rng = random.Random(14)
    junk = bytes(rng.randrange(256) for _ in range(20_000)).replace(b"\n", b"\xff\n") + b"\xff\n"
    junk_lines = junk.count(b"\n")
    if fmt == "csv":
        head, good = "n,v\n", [f"{i},ok\n" for i in range(6)]
    else:
        head, good = WIGLE_PREHEADER + WIGLE_HEADER, [wigle_row(f"00:11:22:33:44:{i:02x}") for i in range(6)]
    src.write_text(head + "".join(good[:3]))
    name = f"binary-{fmt}"
    skipped_before = skipped_no_fix()
    async with engine_from(tmp_path, pattern(name, src, out, fmt)) as engine:
        await eventually(lambda: len(seen(out)) == 3)
        append(src, junk)
        append(src, "".join(good[3:]).encode())

        def accounted() -> float:
            return dead_letters(engine, name) + skipped_no_fix() - skipped_before

        await eventually(lambda: len(seen(out)) == 6 and accounted() == junk_lines)
        await asyncio.sleep(0.3)
        assert len(seen(out)) == 6
        assert engine.health()["status"] == "healthy"
    key = "n" if fmt == "csv" else "mac"
    assert [r[key] for r in seen(out)] == [row.split(",")[0] for row in good]
    assert dead_letters_at(tmp_path, name) == junk_lines  # each junk line, by its number
    assert all("not UTF-8" in r for r in reasons(tmp_path, name))


def dead_letters_at(tmp: Path, pattern_name: str) -> int:
    return len(DlqAdmin(tmp / "data" / "buffer.db").list(PREFIX + pattern_name, limit=100_000))


async def test_wiglecsv_garbled_rows_and_preheader(tmp_path: Path) -> None:
    """A garbled pre-header line (not UTF-8), a non-numeric RSSI, a latitude that is a word, a row
    without MAC, an unclosed quote: each to the DLQ with its line and column; the good
    rows arrive."""
    src, out = tmp_path / "kismet.wiglecsv", tmp_path / "out.jsonl"
    garbled = b"Wig\xffleWifi-1.4,app\x00Release=\xfe\xfe,model\n"
    rows = [
        wigle_row("00:00:00:00:00:01"),
        wigle_row("00:00:00:00:00:02", rssi="loud"),
        wigle_row("00:00:00:00:00:03", lat="north"),
        wigle_row(""),
        wigle_row('00:00:00:00:00:06,"open quote'),
        wigle_row("00:00:00:00:00:05"),
    ]
    src.write_bytes(garbled + WIGLE_HEADER.encode() + "".join(rows).encode())
    async with engine_from(tmp_path, pattern("wigle", src, out, "wiglecsv")) as engine:
        await eventually(lambda: len(seen(out)) == 2)
        await eventually(lambda: dead_letters(engine, "wigle") == 5)
    assert [(r["mac"], r["line"]) for r in seen(out)] == [("00:00:00:00:00:01", 3), ("00:00:00:00:00:05", 8)]
    got = reasons(tmp_path, "wigle")
    assert got[0] == f"{src} line 1: not UTF-8 (byte 4 of the line)"
    assert got[1].startswith(f"{src} line 4: column RSSI: ")
    assert got[2].startswith(f"{src} line 5: column CurrentLatitude: ")
    assert got[3] == f"{src} line 6: no MAC"
    assert got[4] == f"{src} line 7: malformed CSV: unexpected end of data"


def test_50mb_line_without_newline(tmp_path: Path) -> None:
    """A 50 MB line with no newline, in a csv and a wiglecsv file tailed by a real
    `wireway run`: each is dead-lettered (line number, reason) as soon as it passes
    `max_line_bytes`, not held whole (the process stays under 200 MB), and the rows
    after its newline arrive with their right line numbers."""
    csv_src, wigle_src, out = tmp_path / "in.csv", tmp_path / "in.wiglecsv", tmp_path / "out.jsonl"
    csv_src.write_text("n,v\n1,a\n")
    wigle_src.write_text(WIGLE_PREHEADER + WIGLE_HEADER + wigle_row("00:00:00:00:00:01"))
    text = f"""
pattern: {{name: {PREFIX}huge}}
interfaces:
  input:
    - {{type: file, name: c, path: "{csv_src}", format: csv, poll_interval: 0.2, line_field: line}}
    - {{type: file, name: w, path: "{wigle_src}", format: wiglecsv, poll_interval: 0.2, line_field: line}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
"""
    ww = Wireway(tmp_path, text)
    ww.start()
    try:
        assert ww.proc is not None
        proc = psutil.Process(ww.proc.pid)
        peak = [proc.memory_info().rss]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                try:
                    peak.append(proc.memory_info().rss)
                except psutil.Error:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        deadline = time.monotonic() + 20
        while len(seen(out)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        block = b"x" * (1 << 20)
        for path in (csv_src, wigle_src):
            with path.open("ab") as f:
                for _ in range(BIG_LINE // len(block)):
                    f.write(block)
        while dead_letters(ww.url, "huge") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dead_letters(ww.url, "huge") == 2, (
            "the over-long lines were not dead-lettered before their newline"
        )
        append(csv_src, b"\n2,b\n")
        append(wigle_src, b"\n" + wigle_row("00:00:00:00:00:02").encode())
        while len(seen(out)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()
        sampler.join(5)
        assert ww.proc.poll() is None, "wireway exited"
        assert dead_letters(ww.url, "huge") == 2  # reported once, not again at the newline
    finally:
        ww.stop()
    rows = seen(out)
    assert sorted((r.get("n") or r["mac"], r["line"]) for r in rows) == [
        ("00:00:00:00:00:01", 3),
        ("00:00:00:00:00:02", 5),
        ("1", 2),
        ("2", 4),
    ]
    assert reasons(tmp_path, "huge") == [
        f"{csv_src} line 3: longer than 1048576 bytes",
        f"{wigle_src} line 4: longer than 1048576 bytes",
    ]
    print(f"peak RSS {max(peak) / 2**20:.0f} MB")
    assert max(peak) < RSS_LIMIT, f"wireway grew to {max(peak) / 2**20:.0f} MB reading a 50 MB line"
    assert os.path.getsize(csv_src) > BIG_LINE


async def test_overlong_line_cut_by_a_restart(tmp_path: Path) -> None:
    """Stopped in the middle of an over-long line: the next run goes on skipping it (the
    position says so) instead of reading its rest as a row, and reports it only once."""
    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    src.write_bytes(b"n,v\n1,a\n" + b"9" * 5000)
    text = pattern("cut", src, out, "csv", extra=", max_line_bytes: 1024")
    async with engine_from(tmp_path, text) as engine:
        await eventually(lambda: len(seen(out)) == 1 and dead_letters(engine, "cut") == 1)
    append(src, b"9" * 5000 + b",x\n2,b\n")
    async with engine_from(tmp_path, text) as engine:
        await eventually(lambda: len(seen(out)) == 2)
        await asyncio.sleep(0.3)
        assert dead_letters(engine, "cut") == 1
    assert seen(out) == [{"n": "1", "v": "a", "line": 2}, {"n": "2", "v": "b", "line": 4}]
    assert reasons(tmp_path, "cut") == [f"{src} line 3: longer than 1024 bytes"]


async def test_whole_file_ending_in_an_overlong_line(tmp_path: Path) -> None:
    """`mode: whole`: a file whose last line is over-long with no newline is finished
    (its rows delivered, the line dead-lettered, the file moved to failed/)."""
    folder, out = tmp_path / "in", tmp_path / "out.jsonl"
    folder.mkdir()
    (folder / "a.csv").write_bytes(b"n,v\n1,a\n2,b\n" + b"9" * 5000)
    extra = ", mode: whole, settle: 0.1, max_line_bytes: 1024"
    async with engine_from(tmp_path, pattern("whole", folder / "*.csv", out, "csv", extra)) as engine:
        await eventually(lambda: (folder / "failed" / "a.csv").exists())
        await eventually(lambda: dead_letters(engine, "whole") == 1)
    assert [r["n"] for r in seen(out)] == ["1", "2"]
    assert reasons(tmp_path, "whole") == [f"{folder / 'a.csv'} line 4: longer than 1024 bytes"]
