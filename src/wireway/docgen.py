"""Reference pages generated from the options Structs (`wireway docs`)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import msgspec

from wireway import registry

KINDS = ("input", "output", "processor")


def _type_name(t: Any) -> str:
    text = getattr(t, "__name__", None) or str(t)
    return text.replace("typing.", "").replace("Annotated", "").replace("NoneType", "None")


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
    kind = _type_name(getattr(field.type, "__origin__", field.type))
    cells = [f"`{field.encode_name}`", f"`{kind}`", default, desc]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def page(kind: str, name: str) -> str:
    """The markdown page of one component."""
    spec = registry.lookup(kind, name)
    assert spec is not None, (kind, name)
    doc = inspect.cleandoc(spec.config.__doc__ or "")
    lines = [
        f"# `{name}` {kind}",
        "",
        doc,
        "",
        "| option | type | default | description |",
        "| --- | --- | --- | --- |",
    ]
    if kind != "processor":
        common = ["name", "format", "enabled"] + (
            ["when", "buffer", "parallel", "batch_size", "linger"] if kind == "output" else []
        )
        for key in common:
            desc = {
                "name": "label in metrics, logs and `source` (default `<pattern>.<type>`, "
                "then `<pattern>.<type>.2`... for more of one type)",
                "format": "`json` or `jsonl`",
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
            }[key]
            kind_of = {"parallel": "int", "batch_size": "int", "linger": "float"}.get(key, "str")
            lines.append(f"| `{key}` | `{kind_of}` | optional | {desc} |")
    lines += [_row(f) for f in msgspec.structs.fields(spec.config)]
    shorthand = getattr(spec.config, "__shorthand__", None)
    if shorthand:
        lines += ["", f"Shorthand: `- {name}: VALUE` sets `{shorthand}`."]
    return "\n".join(lines).rstrip() + "\n"


def generate(folder: Path) -> list[Path]:
    """Write one page per registered component; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        for name in registry.names(kind):
            path = folder / f"{kind}-{name}.md"
            path.write_text(page(kind, name))
            written.append(path)
    return written
