"""The TAK side of the tak tests: certificates made with `cryptography`, a TAK server
(TCP or TLS with a required client certificate) that keeps the events it reads, a
feeder of JSON rows, and the rows themselves (SSIDs that need escaping)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)
from cryptography.x509.oid import NameOID

SSIDS = ["Caf\u00e9 & <Guest> \"5G\" 'x'", "plain", "\u6771\u4eac-Wi-Fi </event>", "a]]>b&amp;"]
# the cot format's mapping from a row to an event, as the field kit has it
COT = (
    "{type: cot, set: {uid: '\"wifi-\" + payload.mac', callsign: payload.ssid, lat: payload.lat, "
    "lon: payload.lon, ce: payload.accuracy_m, remarks: '\"RSSI: \" + string(payload.rssi)', "
    "time: payload.seen, start: payload.seen}, stale_seconds: 300}"
)


def row(n: int) -> dict[str, Any]:
    return {
        "mac": f"AA:BB:CC:00:{n // 256:02X}:{n % 256:02X}",
        "ssid": f"{SSIDS[n % len(SSIDS)]} #{n}",
        "lat": 51.4778 + n * 1.234567e-7,
        "lon": -0.0014 - n * 7.654321e-8,
        "accuracy_m": 3.5 + n % 7,
        "rssi": -40 - n % 50,
        "seen": f"2026-06-01T12:{n // 60 % 60:02d}:{n % 60:02d}.250Z",
    }


def check_event(data: bytes, sent: dict[str, Any]) -> ET.Element:
    """Parse one event with ElementTree and compare it with the row it came from."""
    event = ET.fromstring(data)
    assert event.tag == "event"
    assert event.get("uid") == f"wifi-{sent['mac']}"
    assert event.get("type") == "a-u-G"
    assert event.get("how") == "m-g"
    assert event.get("time") == sent["seen"]
    assert event.get("start") == sent["seen"]
    seen = datetime.datetime.fromisoformat(sent["seen"].replace("Z", "+00:00"))
    stale = (seen + datetime.timedelta(seconds=300)).isoformat(timespec="milliseconds")
    assert event.get("stale") == stale.replace("+00:00", "Z")
    point = event.find("point")
    assert point is not None
    assert float(point.get("lat", "")) == sent["lat"]
    assert float(point.get("lon", "")) == sent["lon"]
    assert float(point.get("ce", "")) == sent["accuracy_m"]
    assert float(point.get("hae", "")) == 9999999.0
    contact = event.find("detail/contact")
    assert contact is not None
    assert contact.get("callsign") == sent["ssid"]
    assert event.findtext("detail/remarks") == f"RSSI: {sent['rssi']}"
    return event


async def feed(port: int, rows: list[dict[str, Any]]) -> None:
    """Rows as JSON lines to a wireway tcp input."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def sender_pattern(name: str, feed_port: int, output: str) -> str:
    """JSON rows on a tcp input to one tak output; short backoffs for a quick restart."""
    return f"""
pattern: {{name: {name}}}
settings: {{backoff_max: 0.5, breaker_timeout: 0.5}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{feed_port}"}}
  output:
    - {output}
"""


@dataclass
class Certificates:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate,
    written as PEM files and as PKCS#12 files (the client's key also encrypted)."""

    folder: Path
    password: str = "atakatak"
    paths: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wireway test CA")])
        ca = (
            self._builder(ca_name, ca_name, ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self._write("ca.pem", ca.public_bytes(Encoding.PEM))
        for role in ("server", "client"):
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"tak-{role}")])
            builder = self._builder(name, ca_name, key.public_key())
            if role == "server":
                builder = builder.add_extension(
                    x509.SubjectAlternativeName(
                        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                    ),
                    critical=False,
                )
            cert = builder.sign(ca_key, hashes.SHA256())
            self._write(f"{role}.pem", cert.public_bytes(Encoding.PEM))
            self._write(f"{role}.key", key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
            secret = BestAvailableEncryption(self.password.encode())
            p12 = pkcs12.serialize_key_and_certificates(f"tak-{role}".encode(), key, cert, [ca], secret)
            self._write(f"{role}.p12", p12)
            if role == "client":
                sealed = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, secret)
                self._write("client-encrypted.key", sealed)

    @staticmethod
    def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def _write(self, name: str, data: bytes) -> None:
        path = self.folder / name
        path.write_bytes(data)
        self.paths[name] = path

    def server_context(self) -> ssl.SSLContext:
        """The TAK server's: its certificate, and a client certificate required."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.paths["server.pem"], self.paths["server.key"])
        ctx.load_verify_locations(self.paths["ca.pem"])
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


class TakServer:
    """A TAK server on 127.0.0.1: each connection's bytes are cut after `</event>`
    (as TAK Server reads a stream); it keeps the events and the clients' names."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.tls = tls
        self.events: list[bytes] = []
        self.clients: list[str] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self.client, "127.0.0.1", self.port, ssl=self.tls, reuse_address=True
        )

    async def stop(self) -> None:
        """Close the listener and every connection, as a server that goes down."""
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        cert = writer.get_extra_info("peercert")
        if cert:
            self.clients.append(dict(x[0] for x in cert["subject"])["commonName"])
        # a TAK server talks too: the client must cope with what it did not ask for
        writer.write(b'<?xml version="1.0"?><event uid="server-ping" type="t-x-c-t"></event>')
        rest = b""
        try:
            while chunk := await reader.read(65536):
                rest += chunk
                *events, rest = rest.split(b"</event>")
                self.events.extend(e.strip() + b"</event>" for e in events)
        except (ConnectionError, OSError):
            pass
        writer.close()

    def uids(self) -> list[str]:
        return [ET.fromstring(e).get("uid", "") for e in self.events]
