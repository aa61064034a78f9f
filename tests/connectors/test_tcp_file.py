"""tcp input -> file output, invalid lines to the DLQ, and the python processor's failures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from conftest import free_port
from support import engine_from, eventually
from wireway.runtime.dlq import DlqAdmin


async def test_tcp_lines_reach_the_file_and_bad_lines_the_dlq(tmp_path: Path) -> None:
    """Good lines are appended as payloads; invalid JSON and user-code errors are dead-lettered."""
    port = free_port()
    out = tmp_path / "out.jsonl"
    (tmp_path / "userfn.py").write_text(
        "def check(m):\n"
        "    if m['payload'].get('n') == 13:\n"
        "        raise ValueError('unlucky')\n"
        "    return m\n"
    )
    text = f"""
pattern: {{name: relay, type: streaming}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", ack: true}}
  output:
    - {{type: file, address: "{out}", format: jsonl, payload_only: true}}
processors:
  - python: userfn:check
"""
    async with engine_from(tmp_path, text) as engine:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b'{"n": 1}\n{"n": 2}\nnot json\n{"n": 13}\n{"n": 4}\n')
        await writer.drain()
        ack = await asyncio.wait_for(reader.readline(), 5)
        assert ack == b"ok 3 of 5\n"
        writer.close()
        await eventually(lambda: out.exists() and len(out.read_text().splitlines()) == 3)
        assert engine.sqlite is not None
        await eventually(lambda: engine.sqlite.dlq_depth("relay") == 2)
    assert [json.loads(x)["n"] for x in out.read_text().splitlines()] == [1, 2, 4]
    rows = DlqAdmin(tmp_path / "data" / "buffer.db").list("relay")
    reasons = sorted(r["reason"] for r in rows)
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "python ValueError: unlucky"


async def test_routing_with_when(tmp_path: Path) -> None:
    """Each output gets only the messages its `when` accepts."""
    port = free_port()
    hot, cold = tmp_path / "hot.jsonl", tmp_path / "cold.jsonl"
    text = f"""
pattern: {{name: router}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{type: file, name: hot, address: "{hot}", payload_only: true, when: "payload.t > 30"}}
    - {{type: file, name: cold, address: "{cold}", payload_only: true, when: "payload.t <= 30"}}
"""
    async with engine_from(tmp_path, text):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(b'{"t": %d}\n' % t for t in (10, 40, 20, 50)))
        await writer.drain()
        writer.close()

        def count(p: Path) -> int:
            return len(p.read_text().splitlines()) if p.exists() else 0

        await eventually(lambda: count(hot) == 2 and count(cold) == 2)
    assert [json.loads(x)["t"] for x in hot.read_text().splitlines()] == [40, 50]
