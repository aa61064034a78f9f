"""Processors: steps between inputs and outputs.

The step contract (`Processor`, `StepResult`) is in `wireway.processors.base`.
"""

from __future__ import annotations

from typing import Any


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
