"""The tak connector over UDP, on loopback only: wireway's events reach a TAK client
built on pytak that joined a multicast group on `lo` (TTL 0), as XML and as TAK
protocol v1 mesh datagrams; the tak input listens to a group and decodes pytak's own
datagrams and protocol v1 mesh datagrams."""

from __future__ import annotations

import asyncio
import socket
import warnings
from configparser import ConfigParser
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import takproto
from tak_peers import COT, check_event, feed, row, sender_pattern

from conftest import DATA, free_port
from support import engine_from, eventually, written_lines
from wireway.runtime.dlq import DlqAdmin

GROUP = "239.255.73.21"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PytakListener:
    """A TAK client on pytak: joins the group on 127.0.0.1 (`lo`), read-only, and keeps
    every datagram."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.datagrams: list[bytes] = []

    async def __aenter__(self) -> PytakListener:
        with warnings.catch_warnings():  # pytak warns that its optional aiohttp is missing
            warnings.simplefilter("ignore")
            import pytak

        url = urlparse(f"udp+ro://{GROUP}:{self.port}")
        self.reader, _ = await pytak.create_udp_client(url, local_addr="127.0.0.1")
        self.reader.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.task = asyncio.get_running_loop().create_task(self.read())
        return self

    async def read(self) -> None:
        while True:
            data, _ = await self.reader.recv()
            self.datagrams.append(data)

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        self.reader.close()


def multicast_output(port: int, cot: str = COT) -> str:
    return f"{{type: tak, address: 'udp://{GROUP}:{port}', interface: lo, ttl: 0, format: {cot}}}"


async def test_multicast_events_reach_a_pytak_client(tmp_path: Path) -> None:
    """400 rows become 400 datagrams, each one event that parses, with its uid, type,
    how, times and point right and its SSID unchanged after escaping."""
    port, feed_port = free_udp_port(), free_port()
    rows = [row(n) for n in range(400)]
    async with PytakListener(port) as client:
        async with engine_from(tmp_path, sender_pattern("multicast", feed_port, multicast_output(port))):
            for start in range(0, len(rows), 50):  # a modest pace: UDP drops what a full buffer cannot take
                await feed(feed_port, rows[start : start + 50])
                await asyncio.sleep(0.02)
            await eventually(lambda: len(client.datagrams) >= len(rows), timeout=20)
    by_uid = {f"wifi-{r['mac']}": r for r in rows}
    assert len(client.datagrams) == len(rows)
    seen = set()
    for data in client.datagrams:
        assert data.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')
        event = check_event(data, by_uid[f"wifi-{mac_of(data)}"])
        seen.add(event.get("uid"))
    assert seen == set(by_uid)


def mac_of(data: bytes) -> str:
    """The MAC in an event's uid (`wifi-MAC`), read before parsing it fully."""
    start = data.index(b'uid="wifi-') + len(b'uid="wifi-')
    return data[start : data.index(b'"', start)].decode()


async def test_protocol_v1_mesh_over_multicast(tmp_path: Path) -> None:
    """With `protocol: mesh` every datagram is a TAK protocol v1 mesh message that
    takproto reads back to the same event."""
    port, feed_port = free_udp_port(), free_port()
    rows = [row(n) for n in range(20)]
    cot = COT.removesuffix("}") + ", protocol: mesh}"
    async with PytakListener(port) as client:
        async with engine_from(tmp_path, sender_pattern("mesh", feed_port, multicast_output(port, cot))):
            await feed(feed_port, rows)
            await eventually(lambda: len(client.datagrams) >= len(rows))
    by_uid = {f"wifi-{r['mac']}": r for r in rows}
    for data in client.datagrams:
        assert data[:3] == b"\xbf\x01\xbf"
        event = takproto.parse_proto(bytearray(data)).cotEvent
        sent = by_uid.pop(event.uid)
        assert (event.type, event.how) == ("a-u-G", "m-g")
        assert (event.lat, event.lon, event.ce) == (sent["lat"], sent["lon"], sent["accuracy_m"])
        assert event.detail.contact.callsign == sent["ssid"]
    assert by_uid == {}


def pytak_datagrams(kind: str) -> list[bytes]:
    """What pytak 7.6.1 sent, byte for byte (the capture gives each one's length)."""
    capture = (DATA / "pytak_7.6.1_loopback_capture.txt").read_text()
    out = []
    for block in capture.split("===== ")[1:]:
        head, body = block.split("\n", 1)
        if head.startswith(kind + " "):
            out.append(body.encode()[: int(head.split()[1])])
    return out


def receiver_pattern(name: str, entry: str, out: Path) -> str:
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: '{out}', format: jsonl, payload_only: true}}
"""


def lines(path: Path) -> list[Any]:
    return written_lines(path)


async def test_input_decodes_pytak_and_mesh_datagrams_from_a_group(tmp_path: Path) -> None:
    """The tak input joined to a group on `lo` decodes pytak's XML datagrams and
    protocol v1 mesh datagrams; a datagram that is not an event goes to the
    dead-letter queue with where it came from."""
    port = free_udp_port()
    out = tmp_path / "events.jsonl"
    entry = f"{{type: tak, address: 'udp://{GROUP}:{port}', interface: lo}}"
    xml = pytak_datagrams("udp")
    mesh = bytes(takproto.xml2proto(xml[1].split(b"\n", 1)[1], takproto.TAKProtoVer.MESH))
    async with engine_from(tmp_path, receiver_pattern("listen", entry, out)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            for data in [*xml, mesh, b"not an event"]:
                sock.sendto(data, (GROUP, port))
        await eventually(lambda: len(lines(out)) >= 3)
    events = lines(out)
    assert [(e["uid"], e["protocol"]) for e in events] == [
        ("takPing", "xml"),
        ("hub-test-1", "xml"),
        ("hub-test-1", "mesh"),
    ]
    assert events[1]["point"] == {"lat": 47.1234, "lon": 8.7654, "hae": 420.0, "ce": 10.0, "le": 10.0}
    assert events[1]["detail"]["contact"] == {"@callsign": "HUB-1"}
    assert events[2]["point"] == events[1]["point"]
    assert events[2]["detail"]["contact"]["@callsign"] == "HUB-1"
    (letter,) = DlqAdmin(tmp_path / "data" / "buffer.db").list("listen")
    assert letter["reason"].startswith("datagram from 127.0.0.1:")


async def pytak_sender(url: str, proto: int) -> Any:
    """pytak's own transmitter for `url` (TAK_PROTO 0: XML, 1: protocol v1), with the
    multicast interface and TTL that keep it on this host."""
    with warnings.catch_warnings():  # pytak warns that its optional aiohttp is missing
        warnings.simplefilter("ignore")
        import pytak

    config = ConfigParser()
    config["pytak"] = {
        "COT_URL": url,
        "TAK_PROTO": str(proto),
        "PYTAK_MULTICAST_LOCAL_ADDR": "127.0.0.1",
        "PYTAK_MULTICAST_TTL": "0",
    }
    section = config["pytak"]
    _, writer = await pytak.protocol_factory(section)
    return pytak, pytak.TXWorker(asyncio.Queue(), section, writer), writer


@pytest.mark.parametrize(
    ("scheme", "proto", "protocol"),
    [("udp+wo", 0, "xml"), ("udp+wo", 1, "mesh"), ("tcp", 0, "xml"), ("tcp", 1, "stream")],
)
async def test_input_from_a_live_pytak_client(tmp_path: Path, scheme: str, proto: int, protocol: str) -> None:
    """pytak sends 20 events of its own making, as XML or protocol v1, to a group on
    `lo` or over TCP; the tak input makes each one a message, with pytak's point."""
    udp = scheme.startswith("udp")
    port = free_udp_port() if udp else free_port()
    host = GROUP if udp else "127.0.0.1"
    out = tmp_path / "events.jsonl"
    entry = f"{{type: tak, address: '{'udp' if udp else 'tcp'}://{host}:{port}'" + (
        ", interface: lo}" if udp else "}"
    )
    async with engine_from(tmp_path, receiver_pattern("live", entry, out)):
        pytak, worker, writer = await pytak_sender(f"{scheme}://{host}:{port}", proto)
        try:
            for n in range(20):
                event = pytak.gen_cot(lat=10 + n / 8, lon=20.5, uid=f"pytak-{n}", cot_type="a-f-G-U-C")
                await worker.send_data(event)
                await asyncio.sleep(0.001)
            await eventually(lambda: len(lines(out)) >= 20)
        finally:
            writer.close()
    events = lines(out)
    assert sorted(e["uid"] for e in events) == sorted(f"pytak-{n}" for n in range(20))
    assert {e["protocol"] for e in events} == {protocol}
    for e in events:
        n = int(e["uid"].removeprefix("pytak-"))
        assert (e["type"], e["point"]["lat"], e["point"]["lon"]) == ("a-f-G-U-C", 10 + n / 8, 20.5)
