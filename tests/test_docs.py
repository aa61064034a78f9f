"""The generated documentation is current: connector READMEs and reference pages."""

from __future__ import annotations

import pytest

from conftest import ROOT
from wireway import registry
from wireway.docgen import KINDS, README, Family, families, readme, source_checkout

FAMILIES = families()


def test_every_connector_family_is_found() -> None:
    """Each folder under wireway/connectors that registers a component has a family."""
    assert source_checkout()
    names = {family.name for family in FAMILIES}
    folders = {path.parent.name for path in (ROOT / "src" / "wireway" / "connectors").glob("*/__init__.py")}
    assert names <= folders
    assert {"file", "http", "mqtt", "tcp"} <= names


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_connector_readme_is_current(family: Family) -> None:
    """Each family's README.md is what `wireway docs` writes from its Structs and example."""
    path = family.folder / README
    assert path.exists(), f"missing {path}: run `wireway docs`"
    assert path.read_text() == readme(family), f"{path} is stale: run `wireway docs`"


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_connector_readme_covers_each_component(family: Family) -> None:
    """The README has a section per input and output of the family and embeds its example."""
    text = readme(family)
    for kind, name in family.components:
        assert f"## `{name}` {kind}" in text
    assert "```yaml" in text, f"{family.example} is missing"


def test_no_reference_page_without_a_component() -> None:
    """A page in docs/reference/ whose component is gone is removed by `wireway docs`."""
    expected = {f"{kind}-{name}.md" for kind in KINDS for name in registry.names(kind)}
    present = {path.name for path in (ROOT / "docs" / "reference").glob("*.md")}
    assert present - expected == set(), "stale pages: run `wireway docs`"


def test_performance_history_is_gone_and_performance_page_exists() -> None:
    """Performance figures live in docs/performance.md, linked from the README."""
    assert not (ROOT / "docs" / "performance-history.md").exists()
    assert (ROOT / "docs" / "performance.md").is_file()
    assert "docs/performance.md" in (ROOT / "README.md").read_text()


def _section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"## {title}")
    rest = lines[start + 1 :]
    end = next((i for i, line in enumerate(rest) if line.startswith("## ")), len(rest))
    return [line for line in rest[:end] if line.strip()]


def test_readme_performance_section_is_short() -> None:
    """The README keeps targets, latest figures and commands; the rest is in docs/performance.md."""
    assert len(_section((ROOT / "README.md").read_text(), "Performance")) <= 20


def test_readme_quick_start_commands_exist() -> None:
    """The quick start's two commands are Makefile targets."""
    quick_start = "\n".join(_section((ROOT / "README.md").read_text(), "Quick start"))
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        assert f"make {target}" in quick_start
        assert f"\n{target}:" in makefile
