"""Where connectors, processors and formats are found by name.

Every component, wireway's own included, is announced by an installed package
as a Python entry point in the group `wireway.components`. The entry's name is
`<kind>.<type>` and its value the module that defines the component:

    [project.entry-points."wireway.components"]
    "output.file" = "wireway.connectors.file.output"
    "processor.hello" = "wireway_hello.step"

`kind` is `input`, `output`, `processor`, `format` or `migrations`. The module registers its class with
a decorator (`@register_output("file", config=FileOutputConfig)`).
Reading the entry points imports nothing: a module is imported only when a
pattern names its type, so a pattern that does not use MQTT never imports the
MQTT modules. A third-party package (`pip install wireway-foo`) adds components
the same way, and `wireway check` and `wireway docs` see them. When two installed
packages announce the same `<kind>.<type>`, the one earlier on `sys.path` wins.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")
GROUP = "wireway.components"


@dataclass(frozen=True)
class Spec:
    """A registered component: its kind, type name, options Struct and class."""

    kind: str  # "input" | "output" | "processor" | "format" | "migrations"
    name: str
    config: type[msgspec.Struct]
    cls: Any
    summary: str = ""


_REGISTRY: dict[tuple[str, str], Spec] = {}


@functools.cache
def _announced() -> dict[tuple[str, str], str]:
    """(kind, type) -> the module that registers it, from the installed entry points."""
    found: dict[tuple[str, str], str] = {}
    for entry in entry_points(group=GROUP):
        kind, dot, name = entry.name.partition(".")
        if dot and name:
            found.setdefault((kind, name), entry.value.partition(":")[0].strip())
    return found


def refresh() -> None:
    """Read the entry points again (after installing a package into a running process)."""
    _announced.cache_clear()


def _register(kind: str, name: str, config: type[msgspec.Struct]) -> Callable[[T], T]:
    def deco(cls: T) -> T:
        doc = (getattr(cls, "__doc__", None) or "").strip().splitlines()
        _REGISTRY[(kind, name)] = Spec(kind, name, config, cls, doc[0] if doc else "")
        return cls

    return deco


def register_input(name: str, *, config: type[msgspec.Struct]) -> Callable[[T], T]:
    """Register an input connector class under `name`."""
    return _register("input", name, config)


def register_output(name: str, *, config: type[msgspec.Struct]) -> Callable[[T], T]:
    """Register an output connector class under `name`."""
    return _register("output", name, config)


def register_processor(name: str, *, config: type[msgspec.Struct]) -> Callable[[T], T]:
    """Register a processor class under `name`."""
    return _register("processor", name, config)


def register_format(name: str, *, config: type[msgspec.Struct]) -> Callable[[T], T]:
    """Register a format (a `wireway.formats.codec.Codec` class) under `name`."""
    return _register("format", name, config)


def register_migrations(name: str, steps: Callable[[str], Any], *, summary: str = "") -> None:
    """Register a set of schema migrations under `name` (kind `migrations`, for the `sql`
    output's `migrate:`): `steps(table)` gives the steps for the table the output writes."""
    _REGISTRY[("migrations", name)] = Spec("migrations", name, msgspec.Struct, steps, summary)


def names(kind: str) -> list[str]:
    """Every type name of one kind: announced by an entry point or already registered."""
    announced = {name for (k, name) in _announced() if k == kind}
    return sorted(announced | {name for (k, name) in _REGISTRY if k == kind})


def lookup(kind: str, name: str) -> Spec | None:
    """The spec for a type name, importing its module on first use."""
    key = (kind, name)
    if key not in _REGISTRY:
        module = _announced().get(key)
        if module is None:
            return None
        try:
            importlib.import_module(module)
        except ImportError as exc:  # a plugin's missing dependency: say whose
            message = f"{kind} `{name}` comes from {module}, which cannot be imported: {exc}"
            raise ImportError(message) from exc
    return _REGISTRY.get(key)
