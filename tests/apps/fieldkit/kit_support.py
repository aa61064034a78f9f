"""The field kit in-process for tests: the built-in pattern on loopback (its multicast
group joined and sent on `lo`), its API client, and a TAK multicast listener."""

from __future__ import annotations

import asyncio
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conftest import free_port
from wireway.apps import builtin_path
from wireway.config import load_pattern
from wireway.runtime.engine import Engine

GROUP = "239.2.3.1"


def pattern_on_loopback(tmp: Path) -> Path:
    """The built-in pattern with its multicast sent through `lo` (no traffic leaves the host)."""
    text = (builtin_path("fieldkit") / "fieldkit.yaml").read_text()
    marker = '      address: "udp://${FIELDKIT_MULTICAST:-239.2.3.1:6969}"\n'
    assert marker in text
    path = tmp / "fieldkit.yaml"
    path.write_text(text.replace(marker, marker + "      interface: lo\n"))
    return path


@dataclass
class Kit:
    engine: Engine
    api: str
    wigle: Path
    port: int  # the multicast group's port
    data: Path

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"X-API-Key": key} if key else {}
        return httpx.AsyncClient(base_url=self.api, headers=headers, trust_env=False, timeout=10)

    def counts(self) -> dict[str, Any]:
        """The live counts, read from the service (no request)."""
        service = next(iter(self.engine.app_services.values()))
        return service.status()["counts"]  # type: ignore[attr-defined, no-any-return]

    async def status(self, key: str | None = None) -> dict[str, Any]:
        async with self.client(key) as c:
            r = await c.get("/status")
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]


@asynccontextmanager
async def fieldkit(tmp: Path, **env: str) -> AsyncIterator[Kit]:
    """Start the field kit; the same `tmp` again is the same data folder (a restart)."""
    wigle = tmp / "kismet"
    wigle.mkdir(exist_ok=True)
    listen = free_port()
    port = int(env.pop("port", str(free_port())))
    variables = {
        "FIELDKIT_WIGLE_DIR": str(wigle),
        "FIELDKIT_LISTEN": f"127.0.0.1:{listen}",
        "FIELDKIT_MULTICAST": f"{GROUP}:{port}",
        **env,
    }
    pattern, errors = load_pattern(pattern_on_loopback(tmp), variables)
    assert not errors, [str(e) for e in errors]
    assert pattern is not None
    engine = Engine([pattern], data_dir=tmp / "data", http=("127.0.0.1", free_port()))
    await engine.start()
    try:
        yield Kit(engine, f"http://127.0.0.1:{listen}", wigle, port, tmp / "data")
    finally:
        await engine.shutdown()


@dataclass
class Listener(asyncio.DatagramProtocol):
    """A TAK client on the multicast group (joined on `lo`): every event it gets, parsed."""

    events: list[ET.Element] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.raw.append(data)
        self.events.append(ET.fromstring(data))

    def of(self, uid: str) -> list[ET.Element]:
        return [e for e in self.events if e.get("uid") == uid]


@asynccontextmanager
async def listening(port: int) -> AsyncIterator[Listener]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((GROUP, port))
    membership = socket.inet_aton(GROUP) + socket.inet_aton("127.0.0.1")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    loop = asyncio.get_running_loop()
    transport, listener = await loop.create_datagram_endpoint(Listener, sock=sock)
    try:
        yield listener
    finally:
        transport.close()
