"""What the nats tests share: unique names, pattern texts, and a nats-server of the
test's own (JetStream, its own store on a free port) to stop and start mid-run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client

from conftest import free_port
from support import written_lines
from wireway.observability.metrics import REGISTRY

COUNT = 1000


def unique(request: pytest.FixtureRequest) -> str:
    return f"ww_{request.node.name[:30]}_{uuid.uuid4().hex[:8]}".replace("[", "_").replace("]", "_")


def lines(path: Path) -> list[Any]:
    return written_lines(path)


def counted(pattern: str, component: str, outcome: str) -> float:
    labels = {"pattern": pattern, "component": component, "outcome": outcome}
    return REGISTRY.get_sample_value("wireway_messages_total", labels) or 0.0


class OwnServer:
    """A nats-server of the test (JetStream, file store in tmp), stopped and started at will."""

    def __init__(self, tmp: Path) -> None:
        if shutil.which("nats-server") is None:
            pytest.skip("nats-server is not installed")
        self.port = free_port()
        self.store = tmp / "nats-store"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the test's nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def input_pattern(name: str, entry: str, out: Path, extra: str = "") -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
{extra}
"""


def output_pattern(name: str, port: int, entry: str) -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{name: {name}-out, {entry.removeprefix("{")}
settings: {{retries: 1000, backoff_base: 0.05, backoff_max: 0.3, breaker_timeout: 0.3}}
"""


async def send_lines(port: int, values: list[Any]) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(json.dumps(v).encode() + b"\n" for v in values))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def delete_stream(client: Client, stream: str) -> None:
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await client.jetstream().delete_stream(stream)
