"""`wireway dlq` as a subprocess against a buffer file a store wrote under --data-dir."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import wireway
from wireway.envelope import Message
from wireway.runtime.buffer_file import buffer_path
from wireway.runtime.outbox import SqliteStore
from wireway.runtime.store import DeadLetter


async def dead_letters(data_dir: Path, count: int) -> None:
    """`count` dead letters of pattern `orders` in the data dir's buffer, as a run leaves them."""
    store = SqliteStore(buffer_path(data_dir))
    await store.open()
    letters = [
        DeadLetter(
            Message(f"m-{i}", "2026-01-01T00:00:00Z", {"i": i}),
            "orders",
            "orders/out",
            "HTTP 404: gone",
            1,
        )
        for i in range(count)
    ]
    await store.dead_letter(letters)
    await store.close()


async def test_dlq_list_show_redrive_purge(tmp_path: Path) -> None:
    """The DLQ commands work on --data-dir, as tables and JSON."""
    await dead_letters(tmp_path, 3)
    d = ["--data-dir", str(tmp_path)]
    listed = wireway("dlq", "list", *d, env={"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    assert "m-0" in listed.stdout
    assert "HTTP 404: gone" in listed.stdout
    assert "3 shown" in listed.stdout
    shown = wireway("dlq", "show", "m-1", *d)
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["message"]["payload"] == {"i": 1}
    assert wireway("dlq", "show", "nope", *d).returncode == 1
    redriven = wireway("dlq", "redrive", "--message-id", "m-2", *d)
    assert "1 message(s) queued" in redriven.stdout
    purged = wireway("dlq", "purge", "--pattern", "orders", "--yes", *d)
    assert "2 message(s) purged" in purged.stdout


async def test_dlq_reads_only_the_buffer_file(tmp_path: Path) -> None:
    """The buffer is `<data-dir>/buffer.db`; a `wireway.db` beside it (the sensor
    application's storage) is not taken for it."""
    await dead_letters(tmp_path / "elsewhere", 1)
    (tmp_path / "elsewhere" / "buffer.db").rename(tmp_path / "wireway.db")
    result = wireway("dlq", "list", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "no wireway database" in result.stderr
    assert "Traceback" not in result.stderr


def test_dlq_without_a_store_is_a_clear_error(tmp_path: Path) -> None:
    """No database yet: one error line, exit 1, no traceback, nothing created."""
    result = wireway("dlq", "list", "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "none").exists()
