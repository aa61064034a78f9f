"""HTTPS: the process's server speaks TLS with the certificate and key the
`security:` section names (files relative to the pattern file), and a certificate
that does not load stops `wireway run` with a clear message."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import free_port
from support import engine_from
from wireway.errors import WirewayError
from wireway.web.server import tls_files

PATTERN = """
pattern: {{name: tls, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /in}}
  output:
    - {{type: file, address: "{out}"}}
settings: {{buffer: memory}}
security: {{tls_cert: {cert}, tls_key: {key}}}
"""


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wireway test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_the_server_speaks_https_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, _ = make_certificate(tmp_path)
    text = PATTERN.format(out=tmp_path / "out.jsonl", cert="server.crt", key="server.key")  # relative
    async with engine_from(tmp_path, text) as engine:
        host, port = engine.http
        trusting = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(
            base_url=f"https://{host}:{port}", verify=trusting, trust_env=False
        ) as c:
            r = await c.get("/health")
            assert r.status_code == 200
            assert r.headers["x-content-type-options"] == "nosniff"
            r = await c.post("/in", json={"a": 1})
            assert r.status_code == 202
            assert r.http_version == "HTTP/1.1"
        async with httpx.AsyncClient(base_url=f"https://{host}:{port}", trust_env=False) as c:
            with pytest.raises(httpx.ConnectError):  # not trusted without the certificate
                await c.get("/health")
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", trust_env=False) as c:
            with pytest.raises(httpx.HTTPError):  # plain HTTP gets no answer
                await c.get("/health", timeout=5)


def test_certificate_problems_are_clear_errors(tmp_path: Path) -> None:
    from wireway.config import load_pattern

    make_certificate(tmp_path)
    (tmp_path / "other.key").write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    out = tmp_path / "out.jsonl"
    for cert_name, key_name, words in [
        ("missing.crt", "server.key", "cannot be loaded"),
        ("server.crt", "other.key", "cannot be loaded"),  # a key of another certificate
        ("server.crt", '""', "go together"),
    ]:
        path = tmp_path / "p.yaml"
        path.write_text(PATTERN.format(out=out, cert=cert_name, key=key_name))
        pattern, errors = load_pattern(path)
        assert pattern is not None, errors
        with pytest.raises(WirewayError, match=words):
            tls_files([pattern])


def test_wireway_run_stops_on_a_certificate_that_does_not_load(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PATTERN.format(out=tmp_path / "out.jsonl", cert="missing.crt", key="missing.key"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    http = f"127.0.0.1:{free_port()}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wireway",
            "run",
            str(path),
            "--data-dir",
            str(tmp_path / "data"),
            "--http",
            http,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert "missing.crt" in done.stderr
    assert "cannot be loaded" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
