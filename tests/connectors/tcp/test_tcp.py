"""The tcp input and output on real sockets: TLS and mutual TLS with certificates made
here (the `cryptography` package), length framing both ways, formats, acks, and a
relay that loses nothing it confirmed while its peer restarts."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import free_port, wireway
from support import engine_from, eventually
from wireway.config import load_pattern
from wireway.connectors.tcp.output import TcpOutput
from wireway.runtime.dlq import DlqAdmin


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files;
    and a client certificate of another CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _ca(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca[1], hashes.SHA256()), key


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exits:
        yield exits


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = _ca("wireway test CA")
    other = _ca("another CA")
    files: dict[str, Path] = {}
    for label, (cert, key) in {
        "server": _leaf("server", ca, True),
        "client": _leaf("client", ca, False),
        "stranger": _leaf("stranger", other, False),
    }.items():
        files[f"{label}_cert"] = folder / f"{label}.pem"
        files[f"{label}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{label}_key"] = _write_key(key, folder / f"{label}.key")
    (folder / "ca.pem").write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    return Pki(ca=folder / "ca.pem", **files)


def folder(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


class Collector:
    """A plain TCP server of the test's own keeping every JSON line it reads (what a
    pattern under test delivers through a tcp output with payload_only)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.values: list[dict[str, int]] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Collector:
        self.server = await asyncio.start_server(self.client, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            self.values.append(json.loads(line))
        writer.close()

    def numbers(self) -> list[int]:
        return [v["n"] for v in self.values]


def frames(values: list[bytes]) -> bytes:
    return b"".join(len(v).to_bytes(4, "big") + v for v in values)


async def feed(port: int, count: int, start: int = 0) -> None:
    """JSON lines {"n": start..} into a plain tcp input."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(b'{"n": %d}\n' % n for n in range(start, start + count)))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def receiver_text(port: int, out: Collector, pki: Pki | None, name: str = "receiver") -> str:
    tls = f", tls: {{cert: '{pki.server_cert}', key: '{pki.server_key}', ca: '{pki.ca}'}}" if pki else ""
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", framing: length, ack: true{tls}}}
  output:
    - {{type: tcp, address: "127.0.0.1:{out.port}", payload_only: true}}
"""


def relay_text(port: int, peer: int, pki: Pki | None) -> str:
    tls = f", tls: {{ca: '{pki.ca}', cert: '{pki.client_cert}', key: '{pki.client_key}'}}" if pki else ""
    return f"""
pattern: {{name: relay}}
settings: {{retries: 1000, backoff_max: 0.2, breaker_timeout: 0.2}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{type: tcp, address: "127.0.0.1:{peer}", framing: length, payload_only: true, await_ack: true,
        reconnect_initial: 0.05, reconnect_max: 0.2{tls}}}
"""


async def test_mutual_tls_relay_with_length_framing(tmp_path: Path, pki: Pki, stack: AsyncExitStack) -> None:
    """A tcp output with a client certificate reaches a TLS tcp input that requires one,
    length-prefixed both ways, every record in order."""
    relay_port, receiver_port = free_port(), free_port()
    out = await stack.enter_async_context(Collector())
    async with engine_from(folder(tmp_path / "a"), receiver_text(receiver_port, out, pki)):
        async with engine_from(folder(tmp_path / "b"), relay_text(relay_port, receiver_port, pki)):
            await feed(relay_port, 300)
            await eventually(lambda: len(out.numbers()) >= 300)
    assert out.numbers() == list(range(300))


async def send_one(port: int, ctx: ssl.SSLContext) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    writer.write(frames([b'{"n": 1}']))
    await writer.drain()
    # TLS 1.3: the server's verdict on the certificate arrives with the first read
    await asyncio.wait_for(reader.readexactly(1), 5)


async def test_tls_input_refuses_clients_without_a_good_certificate(
    tmp_path: Path, pki: Pki, stack: AsyncExitStack
) -> None:
    """A client with no certificate, or one of another CA, gets nothing stored."""
    port = free_port()
    out = await stack.enter_async_context(Collector())
    async with engine_from(tmp_path, receiver_text(port, out, pki)):
        for cert in (None, (pki.stranger_cert, pki.stranger_key)):
            ctx = ssl.create_default_context(cafile=str(pki.ca))
            if cert is not None:
                ctx.load_cert_chain(str(cert[0]), str(cert[1]))
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                await send_one(port, ctx)
        good = ssl.create_default_context(cafile=str(pki.ca))
        good.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=good)
        writer.write(frames([b'{"n": 7}']))
        assert await asyncio.wait_for(reader.readline(), 5) == b"ok 1\n"
        writer.close()
        await eventually(lambda: out.numbers() == [7])
    assert out.numbers() == [7]


async def test_length_framed_input_dead_letters_bad_records(tmp_path: Path, stack: AsyncExitStack) -> None:
    """Frames are decoded one by one; an invalid one goes to the DLQ and the ack says so;
    a length over max_frame_bytes is answered with an error and closes the connection."""
    port = free_port()
    out = await stack.enter_async_context(Collector())
    text = receiver_text(port, out, None).replace("ack: true", "ack: true, max_frame_bytes: 100")
    async with engine_from(tmp_path, text):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frames([b'{"n": 1}', b"{nope", b'{"n": 2}']))
        assert await asyncio.wait_for(reader.readline(), 5) == b"ok 2 of 3\n"
        writer.write((1000).to_bytes(4, "big") + b"x" * 10)
        answer = await asyncio.wait_for(reader.readline(), 5)
        assert answer.startswith(b"error a frame of 1000 bytes"), answer
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
        writer.close()
        await eventually(lambda: out.numbers() == [1, 2])
    assert out.numbers() == [1, 2]
    rows = DlqAdmin(tmp_path / "data" / "buffer.db").list("receiver")
    assert [r["reason"].startswith("invalid JSON") for r in rows] == [True]


async def test_length_framed_output_on_the_wire(tmp_path: Path) -> None:
    """The output writes each record after its 4-byte big-endian length, in the entry's
    format (text: the payload string)."""
    port, peer = free_port(), free_port()
    got: list[bytes] = []

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readexactly(4)
            except asyncio.IncompleteReadError:
                break
            got.append(await reader.readexactly(int.from_bytes(head, "big")))
        writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", peer)
    text = f"""
pattern: {{name: wire}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", format: text}}
  output:
    - {{type: tcp, address: "127.0.0.1:{peer}", framing: length, format: text}}
"""
    try:
        async with engine_from(tmp_path, text):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"alpha\nbeta gamma\n\nomega\n")
            await writer.drain()
            writer.close()
            await eventually(lambda: len(got) >= 3)
    finally:
        server.close()
    assert got == [b"alpha", b"beta gamma", b"omega"]


async def test_relay_loses_nothing_confirmed_while_the_peer_restarts(
    tmp_path: Path, stack: AsyncExitStack
) -> None:
    """With await_ack the relay confirms a batch only once the receiver stored it: stop the
    receiver, keep sending, start it again, and every record arrives (maybe twice)."""
    relay_port, receiver_port = free_port(), free_port()
    out = await stack.enter_async_context(Collector())
    async with engine_from(folder(tmp_path / "b"), relay_text(relay_port, receiver_port, None)):
        async with engine_from(folder(tmp_path / "a"), receiver_text(receiver_port, out, None)):
            await feed(relay_port, 200)
            await eventually(lambda: len(set(out.numbers())) >= 200)
        await feed(relay_port, 200, start=200)  # the receiver is down: queued in the relay
        await asyncio.sleep(0.3)
        async with engine_from(folder(tmp_path / "a"), receiver_text(receiver_port, out, None)):
            await feed(relay_port, 200, start=400)
            await eventually(lambda: set(out.numbers()) >= set(range(600)), timeout=20)
    assert set(out.numbers()) == set(range(600))
    assert DlqAdmin(tmp_path / "b" / "data" / "buffer.db").list("relay") == []


async def test_plain_output_confirms_once_drained(tmp_path: Path) -> None:
    """Without await_ack the records go to a plain TCP peer as JSON lines (envelopes)."""
    port, peer = free_port(), free_port()
    got: list[dict[str, object]] = []

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            got.append(json.loads(line))
        writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", peer)
    text = f"""
pattern: {{name: plain}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}"}}
  output:
    - {{type: tcp, address: "127.0.0.1:{peer}"}}
"""
    try:
        async with engine_from(tmp_path, text):
            await feed(port, 50)
            await eventually(lambda: len(got) >= 50)
    finally:
        server.close()
    assert [m["payload"] for m in got] == [{"n": n} for n in range(50)]  # type: ignore[index]
    assert all("messageId" in m for m in got)


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ("{type: tcp, address: '127.0.0.1:1', tls: {cert: a.pem}}", "tls.cert", "go together"),
        ("{type: tcp, address: '127.0.0.1:1', tls: {ca: ca.pem}}", "tls", "needs its certificate"),
        ("{type: tcp, address: '127.0.0.1:1', framing: netstring}", "framing", "netstring"),
        (
            "{type: tcp, address: '127.0.0.1:1', tls: {cert: a, key: b, min_version: '1.0'}}",
            "tls.min_version",
            "",
        ),
    ],
)
def test_check_names_the_input_key(tmp_path: Path, entry: str, key: str, message: str) -> None:
    """`wireway check` reports a wrong tcp input option at its key, without a traceback."""
    check_entry(tmp_path, "input", entry, key, message)


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ("{type: tcp, address: nowhere}", "address", "host:port"),
        (
            "{type: tcp, address: '127.0.0.1:1', reconnect_initial: 9, reconnect_max: 1}",
            "reconnect_initial",
            "",
        ),
        ("{type: tcp, address: '127.0.0.1:1', tls: {key: k.pem}}", "tls.cert", "go together"),
        ("{type: tcp, address: '127.0.0.1:1', reconnect_jitter: 2}", "reconnect_jitter", ""),
    ],
)
def test_check_names_the_output_key(tmp_path: Path, entry: str, key: str, message: str) -> None:
    """`wireway check` reports a wrong tcp output option at its key, without a traceback."""
    check_entry(tmp_path, "output", entry, key, message)


def check_entry(tmp_path: Path, kind: str, entry: str, key: str, message: str) -> None:
    inputs, outputs = (
        (entry, "{type: stdout}") if kind == "input" else ("{type: tcp, address: '127.0.0.1:9'}", entry)
    )
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"pattern: {{name: bad}}\ninterfaces:\n  input:\n    - {inputs}\n  output:\n    - {outputs}\n"
    )
    pattern, errors = load_pattern(path)
    assert pattern is None
    text = [str(e) for e in errors]
    line = 4 if kind == "input" else 6
    assert any(f"bad.yaml:{line} interfaces.{kind}[0].{key}:" in t and message in t for t in text), text
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("server_name", "connects"), [(None, True), ("localhost", True), ("elsewhere", False)]
)
async def test_output_checks_the_server_name(
    tmp_path: Path, pki: Pki, stack: AsyncExitStack, server_name: str | None, connects: bool
) -> None:
    """The output verifies the server's certificate against `tls.ca` and its name
    (the host, or `tls.server_name`): a certificate for other names is refused."""
    port = free_port()
    out = await stack.enter_async_context(Collector())
    name = f", server_name: {server_name}" if server_name else ""
    output = (
        f"{{type: tcp, address: '127.0.0.1:{port}', framing: length, "
        f"tls: {{ca: '{pki.ca}', cert: '{pki.client_cert}', key: '{pki.client_key}'{name}}}}}"
    )
    path = tmp_path / "out.yaml"
    path.write_text(
        f"pattern: {{name: out}}\ninterfaces:\n  input:\n    - {{type: tcp, address: '127.0.0.1:9'}}\n"
        f"  output:\n    - {output}\n"
    )
    pattern, errors = load_pattern(path)
    assert pattern is not None, [str(e) for e in errors]
    async with engine_from(folder(tmp_path / "r"), receiver_text(port, out, pki)):
        output_under_test = TcpOutput(pattern.outputs[0].config, pattern.outputs[0], pattern)
        await output_under_test.open()
        try:
            assert output_under_test.sender.connected is connects
        finally:
            await output_under_test.close()
