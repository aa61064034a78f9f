"""The durable buffer under faults: a damaged file at start, a full buffer, a power cut.

A damaged file (truncated, random bytes over a page, another application's SQLite
file) is moved aside and what it still holds is kept; `on_damaged_buffer: refuse`
stops `wireway run` with exit 1 and no traceback. A buffer that is full
(`buffer_max_bytes`, or SQLite's SQLITE_FULL) pushes back with BackpressureError and
takes messages again once there is room; the MQTT input holds its batch meanwhile.
A process killed between the commit and the acknowledgement (the
`WIREWAY_FAULT=after-commit` hook) delivers the message after its restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from conftest import free_port, need_service, wait_http, wireway
from support import engine_from, eventually
from wireway.envelope import Message, new_message_id, now_rfc3339
from wireway.errors import BackpressureError
from wireway.observability.metrics import BUFFER_FULL
from wireway.runtime.buffer_check import DamagedBuffer, problem
from wireway.runtime.outbox import SqliteStore

N = 2000


def message(n: int, pad: int = 200) -> Message:
    return Message(
        message_id=new_message_id(), timestamp=now_rfc3339(), payload={"n": n, "pad": "x" * pad}, source="t"
    )


async def filled(path: Path, n: int = N) -> None:
    """A closed buffer file holding n undelivered messages."""
    store = SqliteStore(path)
    await store.open()
    for start in range(0, n, 500):
        await store.enqueue([("out", message(i)) for i in range(start, min(n, start + 500))])
    await store.close()


def moved(path: Path) -> list[Path]:
    return sorted(
        p for p in path.parent.glob(path.name + ".damaged-*") if not p.name.endswith(("-wal", "-shm"))
    )


async def reopened(path: Path) -> list[int]:
    """The message numbers a new store finds in `path`."""
    store = SqliteStore(path)
    await store.open()
    try:
        items = store.pending()
    finally:
        await store.close()
    return sorted(it.message.payload["n"] for it in items if it.message is not None)


async def test_a_sound_file_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    await filled(path, 10)
    assert problem(path) is None
    assert await reopened(path) == list(range(10))
    assert moved(path) == []


async def test_a_truncated_file_is_moved_aside_and_what_is_readable_kept(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "buffer.db"
    await filled(path)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    assert problem(path) is not None
    kept = await reopened(path)
    assert moved(path), "the damaged file was not moved aside"
    assert 0 < len(kept) < N
    assert kept == sorted(set(kept))  # each once, all decoded
    out = capfd.readouterr()
    text = out.out + out.err
    assert "damaged buffer file moved aside" in text
    assert moved(path)[0].name in text
    assert f"messages_kept={len(kept)}" in text
    assert problem(path) is None  # the new file is sound


async def test_random_bytes_over_a_page_lose_only_that_page(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    await filled(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    rng = random.Random(14)
    with path.open("r+b") as f:
        f.seek(page * (pages // 2))  # a page in the middle of the outbox's rows
        f.write(rng.randbytes(page))
    assert problem(path) is not None
    kept = await reopened(path)
    assert moved(path)
    per_page = page // 250 + 1  # rows of about 250 bytes each
    assert N - 3 * per_page <= len(kept) < N, len(kept)
    assert kept == sorted(set(kept))


async def test_another_sqlite_file_is_moved_aside_untouched(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE users(name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
        conn.commit()
    assert "not a wireway buffer" in (problem(path) or "")
    assert await reopened(path) == []
    [aside] = moved(path)
    with contextlib.closing(sqlite3.connect(aside)) as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [("ada",)]


async def test_refuse_keeps_the_file_and_raises(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    path.write_bytes(b"not a database at all" * 400)
    store = SqliteStore(path, on_damaged="refuse")
    with pytest.raises(DamagedBuffer, match="damaged"):
        await store.open()
    assert moved(path) == []
    assert path.read_bytes().startswith(b"not a database")


def test_wireway_run_refuses_a_damaged_buffer_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "buffer.db").write_bytes(os.urandom(8192))
    (tmp_path / "p.yaml").write_text(
        f"""
pattern: {{name: refuse}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - {{type: file, address: "{tmp_path / "out.jsonl"}"}}
settings: {{on_damaged_buffer: refuse}}
"""
    )
    done = wireway(
        "run",
        str(tmp_path / "p.yaml"),
        "--data-dir",
        str(tmp_path / "data"),
        "--http",
        f"127.0.0.1:{free_port()}",
    )
    output = " ".join((done.stdout + done.stderr).split())  # the console wraps long lines
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert "buffer.db is damaged" in output
    assert "on_damaged_buffer" in output


async def test_buffer_max_bytes_pushes_back_until_delivered(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "buffer.db", max_bytes=256 * 1024)
    await store.open()
    try:
        ids: list[int] = []
        refused = None
        for n in range(2000):
            try:
                items = await store.enqueue([("out", message(n, 1000))])
            except BackpressureError as exc:
                refused = exc
                break
            ids += [it.id for it in items]
        assert refused is not None, "never full"
        assert "buffer_max_bytes" in str(refused)
        assert refused.retry_after >= 1
        assert (store.full.reason or "").startswith("full:")
        with pytest.raises(BackpressureError):
            await store.enqueue([("out", message(-1))])
        await store.ack(ids)  # delivered: room again
        await store.enqueue([("out", message(-2))])
        assert store.full.reason is None
    finally:
        await store.close()


async def test_sqlite_full_is_backpressure_and_nothing_else_breaks(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "buffer.db")
    await store.open()
    try:
        await store.enqueue([("out", message(0))])
        pages = await store._submit(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await store._submit(lambda c: c.execute(f"PRAGMA max_page_count={pages + 1}").fetchall())
        before = BUFFER_FULL.labels("disk")._value.get()
        with pytest.raises(BackpressureError, match="database or disk is full"):
            await store.enqueue([("out", message(n, 2000)) for n in range(1, 200)])
        assert BUFFER_FULL.labels("disk")._value.get() == before + 1
        await store._submit(lambda c: c.execute("PRAGMA max_page_count=1073741823").fetchall())
        await eventually(lambda: store.full.reason is None)  # the disk itself has room
        await store.enqueue([("out", message(n)) for n in range(1, 5)])
    finally:
        await store.close()
    assert await reopened(tmp_path / "buffer.db") == [0, 1, 2, 3, 4]


async def test_the_mqtt_input_holds_its_batch_while_the_buffer_is_full(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    need_service("mosquitto", 1883)
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    prefix = f"wwtest/{request.node.name}/{os.getpid()}-{time.time_ns()}"
    out = tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: mqtt_full}}
interfaces:
  input:
    - {{type: mqtt, topics: ["{prefix}/#"], client_id: "{prefix.replace("/", "-")}"}}
  output:
    - {{type: file, address: "{out}", format: jsonl, payload_only: true}}
"""
    async with engine_from(tmp_path, text) as engine:
        full = engine.sqlite.full  # type: ignore[union-attr]
        full.max_bytes = 1
        full.measured(1 << 20)
        ready, down = engine.readiness()
        assert not ready
        assert any(d.startswith("buffer: full") and "buffer_max_bytes" in d for d in down), down
        client = paho.Client(CallbackAPIVersion.VERSION2)
        client.connect("127.0.0.1", 1883, 30)
        client.loop_start()
        try:
            for n in range(5):
                client.publish(f"{prefix}/d", json.dumps({"n": n}), 1).wait_for_publish(5)
            mqtt_input = engine.runners[0].inputs[0]
            await eventually(lambda: mqtt_input.stalled > 0)  # type: ignore[attr-defined]
            assert mqtt_input.link.paused  # type: ignore[attr-defined]
            assert not out.exists() or out.read_text() == ""
            full.max_bytes = 0
            full.measured(0)
            await eventually(lambda: out.exists() and len(out.read_text().splitlines()) == 5)
        finally:
            client.loop_stop()
            client.disconnect()
    assert sorted(json.loads(x)["n"] for x in out.read_text().splitlines()) == [0, 1, 2, 3, 4]


PATTERN = """
pattern: {{name: powercut, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /ingest}}
  output:
    - {{type: file, address: "{out}", format: jsonl, payload_only: true}}
settings: {{buffer: durable}}
"""


def test_killed_between_commit_and_acknowledgement_delivers_after_restart(tmp_path: Path) -> None:
    """SIGKILL right after the outbox commit, before the 202: the sender saw no answer,
    the message was committed, so it is delivered after the restart (once, or
    twice when the output had it before the kill: counted)."""
    out = tmp_path / "out.jsonl"
    (tmp_path / "p.yaml").write_text(PATTERN.format(out=out))
    port = free_port()
    args = [sys.executable, "-m", "wireway", "run", str(tmp_path / "p.yaml")]
    args += ["--data-dir", str(tmp_path / "data"), "--http", f"127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "log.txt").open("ab")
    proc = subprocess.Popen(args, env={**os.environ, "WIREWAY_FAULT": "after-commit"}, stderr=log)
    try:
        wait_http(url + "/health")
        with pytest.raises(httpx.HTTPError):  # the process dies before it answers
            httpx.post(url + "/ingest", json=[{"seq": s} for s in range(10)], timeout=10, trust_env=False)
        assert proc.wait(20) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    proc = subprocess.Popen(
        args, env={k: v for k, v in os.environ.items() if k != "WIREWAY_FAULT"}, stderr=log
    )
    try:
        wait_http(url + "/health")
        deadline = time.monotonic() + 20
        seen: Counter[int] = Counter()
        while time.monotonic() < deadline:
            if out.exists():
                seen = Counter(json.loads(x)["seq"] for x in out.read_text().splitlines() if x.strip())
            if set(seen) == set(range(10)):
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert set(seen) == set(range(10)), f"committed but lost: {sorted(set(range(10)) - set(seen))}"
    duplicates = sum(n - 1 for n in seen.values())
    print(f"committed 10, acknowledged 0, delivered {len(seen)}, duplicates {duplicates}")
    assert duplicates <= 10
