"""`wireway check` names the key of a wrong tak option, without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import wireway
from wireway.config import load_pattern

GROUP = "239.255.73.19"
UNICAST = "{type: tak, address: 'udp://127.0.0.1:6969'}"


@pytest.mark.parametrize(
    ("kind", "entry", "key", "message"),
    [
        ("output", "{type: tak, address: 'http://127.0.0.1:8087'}", "address", "udp://, tcp:// or tls://"),
        ("output", "{type: tak, address: '127.0.0.1:8087'}", "address", "udp://"),
        ("output", "{type: tak, address: 'tcp://127.0.0.1'}", "address", "host:port"),
        ("output", "{type: tak, address: 'tcp://127.0.0.1:8087/x'}", "address", "nothing after"),
        ("output", "{type: tak, address: 'udp://takserver:6969'}", "address", "numeric"),
        ("output", "{type: tak, address: 'udp://127.0.0.1:6969', tls: {ca: ca.pem}}", "tls", "tls://"),
        ("output", "{type: tak, address: 'tcp://127.0.0.1:8087', tls: {ca: ca.pem}}", "tls", "tls://"),
        ("output", "{type: tak, address: 'tcp://127.0.0.1:8087', ttl: 0}", "ttl", "udp://"),
        ("output", "{type: tak, address: 'tls://127.0.0.1:8089', interface: lo}", "interface", "udp://"),
        (
            "output",
            "{type: tak, address: 'udp://127.0.0.1:6969', reconnect_max: 5}",
            "reconnect_max",
            "tcp://",
        ),
        ("output", "{type: tak, address: 'udp://127.0.0.1:6969', interface: lo}", "interface", "multicast"),
        (
            "output",
            f"{{type: tak, address: 'udp://{GROUP}:6969', interface: nosuch0}}",
            "interface",
            "nosuch0",
        ),
        ("output", f"{{type: tak, address: 'udp://{GROUP}:6969', ttl: 300}}", "ttl", ""),
        (
            "output",
            "{type: tak, address: 'tls://127.0.0.1:8089', tls: {pkcs12: a.p12, cert: a.pem, key: a.key}}",
            "tls.pkcs12",
            "not both",
        ),
        (
            "output",
            "{type: tak, address: 'tls://127.0.0.1:8089', tls: {cert: a.pem}}",
            "tls.cert",
            "together",
        ),
        (
            "output",
            "{type: tak, address: 'tls://127.0.0.1:8089', tls: {password: x}}",
            "tls.password",
            "pkcs12",
        ),
        ("output", "{type: tak, address: 'tls://127.0.0.1:8089', tls: {p12: a.p12}}", "tls", "p12"),
        ("output", "{type: tak, address: 'udp://127.0.0.1:6969', format: json}", "format", "cot"),
        ("input", "{type: tak, address: 'tls://127.0.0.1:8089'}", "address", "needs `tls:`"),
        ("input", "{type: tak, address: 'tls://127.0.0.1:8089', tls: {ca: ca.pem}}", "tls", "certificate"),
        ("input", "{type: tak, address: 'udp://127.0.0.1:6969', tls: {pkcs12: a.p12}}", "tls", "tls://"),
        ("input", "{type: tak, address: 'tcp://127.0.0.1:8087', interface: lo}", "interface", "udp://"),
        ("input", "{type: tak, address: 'tcp://127.0.0.1:8087', max_pending: 5}", "max_pending", "udp://"),
        (
            "input",
            f"{{type: tak, address: 'udp://{GROUP}:6969', interface: nosuch0}}",
            "interface",
            "nosuch0",
        ),
        ("input", "{type: tak, address: 'udp://[ff02::1]:6969'}", "address", "IPv6"),
        ("input", "{type: tak, address: 'udp://127.0.0.1:6969', max_event_bytes: 10}", "max_event_bytes", ""),
    ],
)
def test_check_names_the_key(tmp_path: Path, kind: str, entry: str, key: str, message: str) -> None:
    """A wrong option is an error at its key (its line and path), with a sentence."""
    inputs, outputs = (entry, "{type: stdout}") if kind == "input" else (UNICAST, entry)
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"pattern: {{name: bad}}\ninterfaces:\n  input:\n    - {inputs}\n  output:\n    - {outputs}\n"
    )
    pattern, errors = load_pattern(path)
    assert pattern is None
    text = [str(e) for e in errors]
    line = 4 if kind == "input" else 6
    assert any(f"bad.yaml:{line} interfaces.{kind}[0].{key}" in t and message in t for t in text), text


def test_cli_check_reports_without_a_traceback(tmp_path: Path) -> None:
    """The real CLI: exit 1, the key named, no traceback."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "pattern: {name: bad}\ninterfaces:\n  input:\n    - {type: stdout}\n  output:\n"
        "    - {type: tak, address: 'udp://127.0.0.1:6969', tls: {ca: ca.pem}}\n"
    )
    result = wireway("check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "interfaces.output[0].tls" in result.stdout + result.stderr


def test_good_entries_pass(tmp_path: Path) -> None:
    """Multicast, unicast, broadcast, TCP and TLS (PEM and PKCS#12) entries are accepted."""
    outputs = [
        f"{{type: tak, address: 'udp://{GROUP}:6969', interface: lo, ttl: 0, loopback: false}}",
        "{type: tak, address: 'udp://127.255.255.255:6969', broadcast: true}",
        "{type: tak, address: 'tcp://127.0.0.1:8087', reconnect_max: 5}",
        "{type: tak, address: 'tls://127.0.0.1:8089', tls: {pkcs12: a.p12, password: x, ca: ca.pem}}",
        "{type: tak, address: 'tls://127.0.0.1:8089', tls: {cert: a.pem, key: a.key, password: x}}",
        "{type: tak, address: 'tls://localhost:8089'}",
    ]
    inputs = [
        f"{{type: tak, address: 'udp://{GROUP}:6969', interface: '127.0.0.1', receive_buffer: 65536}}",
        "{type: tak, address: 'tcp://127.0.0.1:8087'}",
        "{type: tak, address: 'tls://127.0.0.1:8089', tls: {pkcs12: s.p12, password: x, ca: ca.pem}}",
    ]
    listed = "\n".join(f"    - {e}" for e in outputs)
    fed = "\n".join(f"    - {e}" for e in inputs)
    path = tmp_path / "good.yaml"
    path.write_text(f"pattern: {{name: good}}\ninterfaces:\n  input:\n{fed}\n  output:\n{listed}\n")
    pattern, errors = load_pattern(path)
    assert not errors, [str(e) for e in errors]
    assert pattern is not None
