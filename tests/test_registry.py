"""Every registered component has a current reference page and a JSON Schema."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from conftest import ROOT
from wireway import registry
from wireway.docgen import KINDS, page


def _shipped(kind: str, name: str) -> bool:
    """A component of wireway itself (tests register their own, which have no page)."""
    spec = registry.lookup(kind, name)
    return spec is not None and spec.cls.__module__.startswith("wireway.")


COMPONENTS = [(k, n) for k in KINDS for n in registry.names(k) if _shipped(k, n)]


@pytest.mark.parametrize(("kind", "name"), COMPONENTS, ids=lambda x: str(x))
def test_reference_page_is_current(kind: str, name: str) -> None:
    """docs/reference/ matches the Structs (run `wireway docs` after changing options)."""
    path = ROOT / "docs" / "reference" / f"{kind}-{name}.md"
    assert path.exists(), f"missing {path}: run `wireway docs`"
    assert path.read_text() == page(kind, name), f"{path} is stale: run `wireway docs`"


@pytest.mark.parametrize(("kind", "name"), COMPONENTS, ids=lambda x: str(x))
def test_options_have_a_json_schema(kind: str, name: str) -> None:
    """Each options Struct forbids unknown keys and produces a JSON Schema."""
    spec = registry.lookup(kind, name)
    assert spec is not None
    assert spec.config.__struct_config__.forbid_unknown_fields
    schema = msgspec.json.schema(spec.config)
    assert "$defs" in schema or "properties" in schema


def test_builtin_application_passes_check() -> None:
    """The pattern files that ship inside the package are valid."""
    from wireway.apps import builtin_path
    from wireway.config import load_deployment

    patterns, errors = load_deployment(builtin_path())
    assert not errors, [str(e) for e in errors]
    assert patterns
    assert Path(patterns[0].file).is_file()
