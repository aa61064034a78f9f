"""Every connector family's example.yaml is a pattern `wireway check` accepts."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import wireway
from wireway.docgen import Family, families

FAMILIES = families()
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# host of a URL (scheme://[user@]host) or of a host:port address
_URL_HOST = re.compile(r"[a-z][a-z0-9+.-]*://(?:[^@/\s\"']*@)?(\[[^\]]+\]|[^:/\s\"'}]+)")
_HOST_PORT = re.compile(r"^(\[[^\]]+\]|[A-Za-z0-9.-]+):\d+$")


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _hosts(text: str) -> set[str]:
    """Every host named in the YAML's values, `${VAR:-default}` defaults included."""
    found: set[str] = set()
    for value in _strings(yaml.safe_load(text)):
        value = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", value)
        found |= {m.group(1) for m in _URL_HOST.finditer(value)}
        match = _HOST_PORT.match(value.strip())
        if match:
            found.add(match.group(1))
    return found


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_example_passes_check(family: Family) -> None:
    """`wireway check` accepts the example and names the family's components in it."""
    assert family.example.is_file(), f"add {family.example}: a pattern file using {family.name}"
    result = wireway("check", str(family.example))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok "), result.stdout
    text = family.example.read_text()
    used = {
        (kind, entry["type"])
        for kind in ("input", "output")
        for entry in yaml.safe_load(text)["interfaces"].get(kind, [])
    }
    assert used & set(family.components), f"{family.example} uses none of {family.components}"


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_example_uses_only_loopback(family: Family) -> None:
    """An example never points at a machine other than this one."""
    hosts = _hosts(family.example.read_text())
    assert hosts <= LOOPBACK, f"{family.example} names {sorted(hosts - LOOPBACK)}"


def test_host_finder_sees_addresses() -> None:
    """The loopback check finds hosts in URLs, in host:port and behind ${VAR:-...}."""
    text = (
        "a: '${U:-mqtt://broker.example:1883}'\n"
        "b: {c: 'postgresql://u:p@10.0.0.5:5432/db'}\n"
        "d: ['0.0.0.0:7000', 'http://127.0.0.1:9000/x']\n"
    )
    assert _hosts(text) == {"broker.example", "10.0.0.5", "0.0.0.0", "127.0.0.1"}
