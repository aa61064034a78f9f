"""Processors: steps between inputs and outputs.

A processor is constructed at load time from its options Struct (so `wireway check`
sees its errors) and has `async process(batch) -> (passed, failed)`, where `failed`
pairs each rejected message with its reason. A message in neither list was
filtered out on purpose.
"""

from __future__ import annotations

from typing import Any

from wireway.envelope import Message

Failed = list[tuple[Message, str]]
Result = tuple[list[Message], Failed]


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path inside nested dicts, creating objects on the way."""
    *parents, last = path.split(".")
    node = target
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[last] = value


def pop_path(target: dict[str, Any], path: str) -> tuple[bool, Any]:
    """Remove a dotted path; returns (found, value)."""
    *parents, last = path.split(".")
    node: Any = target
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and last in node:
        return True, node.pop(last)
    return False, None
