"""Reference pages and connector READMEs generated from the options Structs (`wireway docs`).

Two kinds of page come from the same source (each component's options Struct and
docstrings):

- one reference page per registered input, output and processor, `docs/reference/<kind>-<type>.md`;
- one `README.md` per connector family folder of wireway's own source tree
  (`src/wireway/connectors/<family>/`), covering every input and output defined in that
  folder and embedding the folder's `example.yaml`, so each family documents itself where
  its code is. A plugin package's folders are left alone: only a source checkout's are
  written.

Tests compare the files with what these functions produce, so a page that no longer
matches its Struct fails CI until `wireway docs` is run again.
"""

from __future__ import annotations

import importlib
import inspect
import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

from wireway import registry

KINDS = ("input", "output", "processor", "format")
CONNECTOR_PACKAGE = "wireway.connectors"
EXAMPLE = "example.yaml"
README = "README.md"

_COMMON = {
    "name": "label in metrics, logs and `source` (default `<pattern>.<type>`)",
    "format": "how bytes become messages: a format's name or `{type: NAME, ...its options}`",
    "when": "CEL condition: only matching messages go to this output",
    "enabled": "`false` leaves this entry out (handy with `${VAR:-true}`)",
    "buffer": "`memory` for this output alone (lossy, faster); the pattern's otherwise",
    "parallel": "batches delivered at once (default 1: in order); more keeps a "
    "slow peer such as a database busy, for outputs where order does not matter",
    "batch_size": "messages written at once by this output (the pattern's "
    "`settings.batch_size` otherwise); bigger for a peer whose cost is per batch",
    "linger": "seconds to wait for a batch to fill before delivering a smaller one "
    "(default 0: at once); fewer, fuller batches for a peer whose cost is per "
    "batch, when its readers can wait that long",
}
_COMMON_TYPES = {"parallel": "int", "batch_size": "int", "linger": "float"}


def _type_name(t: Any) -> str:
    """A field's type as a reader writes it: `str | None`, `list[str]`, `'3.1.1' | '5'`."""
    origin, args = get_origin(t), get_args(t)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(_type_name(a) for a in args)}]"
    if t is type(None):
        return "None"
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


def _nested(t: Any) -> list[type[msgspec.Struct]]:
    """The option Structs inside a field's type (`HmacOptions | None` -> [HmacOptions])."""
    if isinstance(t, type) and issubclass(t, msgspec.Struct):
        return [t]
    return [inner for arg in get_args(t) for inner in _nested(arg)]


def _row(field: msgspec.structs.FieldInfo) -> str:
    if field.required:
        default = "required"
    elif field.default is not msgspec.NODEFAULT:
        default = f"`{field.default!r}`"
    else:
        default = f"`{field.default_factory()!r}`"
    desc = ""
    for meta in getattr(field.type, "__metadata__", ()):
        desc = getattr(meta, "description", None) or desc
    cells = [f"`{field.encode_name}`", f"`{_type_name(field.type)}`", default, desc]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _struct_tables(config: type[msgspec.Struct]) -> list[str]:
    """One table per option that takes options of its own (say `hmac: {secret: ...}`)."""
    lines: list[str] = []
    for field in msgspec.structs.fields(config):
        for inner in _nested(field.type):
            doc = inspect.cleandoc(inner.__doc__ or "")
            lines += ["", f"`{field.encode_name}` takes:", ""]
            lines += [doc, ""] if doc else []
            lines += ["| option | type | default | description |", "| --- | --- | --- | --- |"]
            lines += [_row(f) for f in msgspec.structs.fields(inner)]
    return lines


def _spec(kind: str, name: str) -> registry.Spec:
    spec = registry.lookup(kind, name)
    if spec is None:
        raise LookupError(f"no {kind} named `{name}` is registered")
    return spec


def _options(kind: str, name: str, spec: registry.Spec) -> list[str]:
    """The options table: the keys every entry of this kind takes, then the Struct's own."""
    lines = ["| option | type | default | description |", "| --- | --- | --- | --- |"]
    if kind in ("input", "output"):
        common = ["name", "format", "enabled"]
        if kind == "output":
            common += ["when", "buffer", "parallel", "batch_size", "linger"]
        for key in common:
            kind_of = _COMMON_TYPES.get(key, "str")
            text = _COMMON[key]
            if key == "format":
                usable = getattr(spec.cls, "formats", None)
                which = ", ".join(f"`{f}`" for f in usable) if usable else "any registered format"
                default = getattr(spec.cls, "default_format", "json")
                text = f"{text}; default `{default}`; takes {which}"
            lines.append(f"| `{key}` | `{kind_of}` | optional | {text} |")
    lines += [_row(f) for f in msgspec.structs.fields(spec.config)]
    lines += _struct_tables(spec.config)
    shorthand = getattr(spec.config, "__shorthand__", None)
    if shorthand:
        lines += ["", f"Shorthand: `- {name}: VALUE` sets `{shorthand}`."]
    return lines


def page(kind: str, name: str) -> str:
    """The markdown reference page of one component."""
    spec = _spec(kind, name)
    doc = inspect.cleandoc(spec.config.__doc__ or "")
    lines = [f"# `{name}` {kind}", "", doc, "", *_options(kind, name, spec)]
    return "\n".join(lines).rstrip() + "\n"


def generate(folder: Path) -> list[Path]:
    """Write one reference page per registered component into `folder`, and the README of
    every connector family of a source checkout; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        for name in registry.names(kind):
            path = folder / f"{kind}-{name}.md"
            _write(path, page(kind, name))
            written.append(path)
    for kind in KINDS:  # the page of a component that is gone would mislead
        for path in folder.glob(f"{kind}-*.md"):
            if path not in written:
                path.unlink()
    if source_checkout():
        for family in families():
            path = family.folder / README
            _write(path, readme(family))
            written.append(path)
    return written


def _write(path: Path, text: str) -> None:
    """Replace the file only when its text changes, through a rename, so a reader (a test
    running beside `wireway docs`) never sees half a page."""
    if path.exists() and path.read_text() == text:
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


@dataclass(frozen=True)
class Family:
    """A connector family: one folder under `wireway/connectors/` and what it registers."""

    name: str
    folder: Path
    components: tuple[tuple[str, str], ...]  # (kind, type), inputs first

    @property
    def example(self) -> Path:
        return self.folder / EXAMPLE


def source_checkout() -> bool:
    """True when wireway runs from its repository (the READMEs there are ours to write)."""
    return (Path(__file__).resolve().parents[2] / "pyproject.toml").is_file()


def families() -> list[Family]:
    """Every connector family of wireway's own package that registers an input or output."""
    found: dict[str, list[tuple[str, str]]] = {}
    for kind in ("input", "output"):
        for name in registry.names(kind):
            module = _spec(kind, name).cls.__module__
            if not module.startswith(CONNECTOR_PACKAGE + "."):
                continue
            family = module.split(".")[2]
            found.setdefault(family, []).append((kind, name))
    result = []
    for family, components in sorted(found.items()):
        package = importlib.import_module(f"{CONNECTOR_PACKAGE}.{family}")
        folder = Path(package.__file__ or "").resolve().parent
        result.append(Family(family, folder, tuple(components)))
    return result


def readme(family: Family) -> str:
    """The README of one connector family: what it is, each component's options, its example."""
    package = importlib.import_module(f"{CONNECTOR_PACKAGE}.{family.name}")
    intro = inspect.cleandoc(package.__doc__ or "")
    listing = ", ".join(f"`{name}` {kind}" for kind, name in family.components)
    lines = [
        f"# {family.name}",
        "",
        "<!-- Generated by `wireway docs` from the options Structs, the docstrings and",
        "     example.yaml of this folder: edit those, then run `wireway docs`. -->",
        "",
        intro,
        "",
        f"Registers: {listing}. Every option also has a reference page in",
        "[docs/reference/](../../../../docs/reference/).",
    ]
    for kind, name in family.components:
        spec = _spec(kind, name)
        lines += ["", f"## `{name}` {kind}", ""]
        if spec.summary:
            lines += [spec.summary, ""]
        lines += [inspect.cleandoc(spec.config.__doc__ or ""), "", *_options(kind, name, spec)]
    lines += ["", "## Example", ""]
    if family.example.is_file():
        lines += [
            f"`{EXAMPLE}`, a complete pattern file (`wireway check` accepts it; a test runs it):",
            "",
            "```yaml",
            family.example.read_text().rstrip(),
            "```",
            "",
            "```sh",
            f"wireway check src/wireway/connectors/{family.name}/{EXAMPLE}",
            f"wireway run src/wireway/connectors/{family.name}/{EXAMPLE}",
            "```",
        ]
    else:
        lines.append(f"(none yet: add `{EXAMPLE}` to this folder)")
    return "\n".join(lines).rstrip() + "\n"
