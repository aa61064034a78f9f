"""The tak connector over TCP and TLS: a TAK server the test starts (certificates
made here, a client certificate required) receives wireway's events over `tls://`,
again after it restarts with nothing lost; the client certificate as PEM, encrypted
PEM and PKCS#12; the tak input reads pytak's stream and protocol v1 stream frames."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
import takproto
from tak_peers import COT, Certificates, TakServer, check_event, feed, row, sender_pattern

from conftest import DATA, free_port
from support import engine_from, eventually, written_lines
from wireway.errors import WirewayError
from wireway.runtime.dlq import DlqAdmin


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


def tls_output(port: int, certs: Certificates, identity: str) -> str:
    return (
        f"{{type: tak, address: 'tls://127.0.0.1:{port}', reconnect_initial: 0.05, reconnect_max: 0.2, "
        f"connect_timeout: 1, tls: {{ca: '{certs.paths['ca.pem']}', {identity}}}, format: {COT}}}"
    )


def pem(certs: Certificates) -> str:
    return f"cert: '{certs.paths['client.pem']}', key: '{certs.paths['client.key']}'"


def status(engine: Any) -> str:
    return str(engine.runners[0].routes[0].output.health().get("under-test"))


async def test_tls_server_gets_events_and_again_after_a_restart(tmp_path: Path, certs: Certificates) -> None:
    """100 events reach the TLS server (client certificate checked); the server goes
    down, 100 more wait in the outbox, the server comes back and gets them: all 200
    uids, each event parsed and right, nothing dead-lettered."""
    port, feed_port = free_port(), free_port()
    server = TakServer(port, certs.server_context())
    await server.start()
    rows = [row(n) for n in range(200)]
    entry = "{name: under-test, " + tls_output(port, certs, pem(certs)).removeprefix("{")
    async with engine_from(tmp_path, sender_pattern("tls", feed_port, entry)) as engine:
        route = engine.runners[0].routes[0]
        await feed(feed_port, rows[:100])
        await eventually(lambda: len(server.events) >= 100)
        await server.stop()
        await eventually(lambda: status(engine) == "down")
        await feed(feed_port, rows[100:])
        await eventually(lambda: route.queue.depth >= 100)
        assert len(server.events) == 100  # nothing written while it was away
        await server.start()
        await eventually(lambda: len(server.events) >= 200, timeout=15)
        await eventually(lambda: route.delivered >= 200)
    assert sorted(server.uids()) == sorted(f"wifi-{r['mac']}" for r in rows)
    by_uid = {f"wifi-{r['mac']}": r for r in rows}
    for data, uid in zip(server.events, server.uids(), strict=True):
        check_event(data, by_uid[uid])
    assert set(server.clients) == {"tak-client"}
    assert DlqAdmin(tmp_path / "data" / "buffer.db").list("tls") == []


@pytest.mark.parametrize(
    "identity",
    [
        "pkcs12: '{p12}', password: atakatak",
        "cert: '{cert}', key: '{encrypted}', password: atakatak",
    ],
    ids=["pkcs12", "encrypted-pem"],
)
async def test_client_certificate_from_pkcs12_or_encrypted_pem(
    tmp_path: Path, certs: Certificates, identity: str
) -> None:
    """The server sees the client certificate loaded from a PKCS#12 file or from an
    encrypted PEM key, with their password."""
    port, feed_port = free_port(), free_port()
    server = TakServer(port, certs.server_context())
    await server.start()
    paths = certs.paths
    ident = identity.format(
        p12=paths["client.p12"], cert=paths["client.pem"], encrypted=paths["client-encrypted.key"]
    )
    try:
        async with engine_from(tmp_path, sender_pattern("p12", feed_port, tls_output(port, certs, ident))):
            await feed(feed_port, [row(n) for n in range(5)])
            await eventually(lambda: len(server.events) >= 5)
    finally:
        await server.stop()
    assert server.clients == ["tak-client"]


async def test_a_wrong_pkcs12_password_is_a_clear_error(tmp_path: Path, certs: Certificates) -> None:
    """A wrong password stops the start with a sentence naming the file, not a traceback."""
    entry = tls_output(free_port(), certs, f"pkcs12: '{certs.paths['client.p12']}', password: wrong")
    with pytest.raises(WirewayError, match="wrong password"):
        async with engine_from(tmp_path, sender_pattern("badpw", free_port(), entry)):
            pass


async def test_plain_tcp_events_back_to_back(tmp_path: Path) -> None:
    """Over tcp:// the events follow one another on one connection, each whole."""
    port, feed_port = free_port(), free_port()
    server = TakServer(port)
    await server.start()
    rows = [row(n) for n in range(50)]
    output = f"{{type: tak, address: 'tcp://127.0.0.1:{port}', format: {COT}}}"
    try:
        async with engine_from(tmp_path, sender_pattern("tcp", feed_port, output)):
            await feed(feed_port, rows)
            await eventually(lambda: len(server.events) >= 50)
    finally:
        await server.stop()
    assert server.uids() == [f"wifi-{r['mac']}" for r in rows]  # one connection: in order
    for data, sent in zip(server.events, rows, strict=True):
        check_event(data, sent)


def pytak_stream() -> bytes:
    """The bytes pytak 7.6.1 wrote on its TCP connection, one event after the other."""
    capture = (DATA / "pytak_7.6.1_loopback_capture.txt").read_text()
    out = b""
    for block in capture.split("===== ")[1:]:
        head, body = block.split("\n", 1)
        if head.startswith("tcp "):
            out += body.encode()[: int(head.split()[1])]
    return out


def listener_pattern(entry: str, out: Path) -> str:
    return f"""
pattern: {{name: listen}}
interfaces:
  input:
    - {entry}
  output:
    - {{type: file, address: '{out}', format: jsonl, payload_only: true}}
"""


def lines(path: Path) -> list[Any]:
    return written_lines(path)


async def test_input_reads_pytak_stream_and_protocol_frames(tmp_path: Path) -> None:
    """pytak's stream (declaration + event, no delimiter) sent in small pieces, then
    protocol v1 stream frames on the same connection: every event a message, in order;
    a broken event goes to the dead-letter queue."""
    port = free_port()
    out = tmp_path / "events.jsonl"
    stream = pytak_stream()
    xml = stream[stream.index(b"<event", 100) :]
    frame = bytes(takproto.xml2proto(xml, takproto.TAKProtoVer.STREAM))
    data = stream + b"\n<event uid='broken'><point lat='x'/></event>" + frame
    async with engine_from(
        tmp_path, listener_pattern(f"{{type: tak, address: 'tcp://127.0.0.1:{port}'}}", out)
    ):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for start in range(0, len(data), 97):
            writer.write(data[start : start + 97])
            await writer.drain()
        writer.close()
        await eventually(lambda: len(lines(out)) >= 3)
        await eventually(lambda: len(DlqAdmin(tmp_path / "data" / "buffer.db").list("listen")) >= 1)
    events = lines(out)
    assert [(e["uid"], e["protocol"]) for e in events] == [
        ("takPing", "xml"),
        ("hub-test-1", "xml"),
        ("hub-test-1", "stream"),
    ]
    assert events[2]["point"] == events[1]["point"]
    (letter,) = DlqAdmin(tmp_path / "data" / "buffer.db").list("listen")
    assert letter["reason"].startswith("connection from 127.0.0.1:")
    assert "broken" in letter["reason"] or "point" in letter["reason"]


async def send_without_certificate(port: int, tls: ssl.SSLContext) -> None:
    """Stream pytak's events over TLS without a client certificate: raises once the
    server refuses (with TLS 1.3 the refusal comes after the handshake)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
    writer.write(pytak_stream())
    await writer.drain()
    await reader.read()
    raise ConnectionError("the server closed the connection")


@pytest.mark.parametrize("identity", ["cert: '{pem}', key: '{key}'", "pkcs12: '{p12}', password: atakatak"])
async def test_tls_input_requires_a_client_certificate(
    tmp_path: Path, certs: Certificates, identity: str
) -> None:
    """A tls:// listener (its certificate as PEM or PKCS#12) with `ca` takes events from
    a client with a certificate signed by that CA (here wireway's own tak output) and
    refuses a client without one."""
    port, feed_port = free_port(), free_port()
    out = tmp_path / "events.jsonl"
    paths = certs.paths
    own = identity.format(pem=paths["server.pem"], key=paths["server.key"], p12=paths["server.p12"])
    entry = f"{{type: tak, address: 'tls://127.0.0.1:{port}', tls: {{{own}, ca: '{paths['ca.pem']}'}}}}"
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    async with engine_from(tmp_path / "in", listener_pattern(entry, out)):
        bare = ssl.create_default_context(cafile=paths["ca.pem"])
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await send_without_certificate(port, bare)
        sender = sender_pattern("send", feed_port, tls_output(port, certs, pem(certs)))
        async with engine_from(tmp_path / "out", sender):
            await feed(feed_port, [row(n) for n in range(10)])
            await eventually(lambda: len(lines(out)) >= 10)
    assert sorted(e["uid"] for e in lines(out)) == sorted(f"wifi-{row(n)['mac']}" for n in range(10))


@pytest.mark.parametrize(
    ("address", "protocol"), [("tcp://127.0.0.1:{port}", "mesh"), ("udp://127.0.0.1:{port}", "stream")]
)
async def test_a_protocol_that_does_not_fit_the_transport_stops_the_start(
    tmp_path: Path, address: str, protocol: str
) -> None:
    """Mesh messages belong in datagrams and stream frames on a connection: the other
    way round is refused at the start with a sentence saying which fits."""
    output = f"{{type: tak, address: '{address.format(port=free_port())}', format: {{type: cot, protocol: {protocol}}}}}"
    with pytest.raises(WirewayError, match=f"TAK protocol `{protocol}` does not go over"):
        async with engine_from(tmp_path, sender_pattern("misfit", free_port(), output)):
            pass
