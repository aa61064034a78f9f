"""An `sql` output without a URL stores in the engine's data folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_sql import send_lines

from conftest import free_port
from support import engine_from, eventually


async def test_an_empty_url_is_a_file_in_the_data_folder(tmp_path: Path) -> None:
    """`url: ""` means `<data-dir>/wireway.db`, the data dir the engine was given (not the
    working directory's `data/`, nor anything read from the environment)."""
    port = free_port()
    pattern = f"""
pattern: {{name: notes}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", ack: true}}
  output:
    - type: sql
      url: ""
      table: notes
      columns: {{message_id: messageId, text: payload.text}}
"""
    db_file = tmp_path / "data" / "wireway.db"  # engine_from's data dir is tmp/data
    db_file.parent.mkdir()
    conn = sqlite3.connect(db_file)  # the table, as its user made it
    conn.execute("CREATE TABLE notes (message_id TEXT PRIMARY KEY, text TEXT)")
    conn.commit()
    async with engine_from(tmp_path, pattern):
        assert await send_lines(port, [{"text": "hello"}])

        def stored() -> bool:
            return conn.execute("SELECT text FROM notes").fetchall() == [("hello",)]

        await eventually(stored)
        conn.close()
