"""Durations in connector options: seconds, or text with a unit (`500ms`, `30s`, `5m`)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def seconds(value: float | str, key: str) -> float:
    """A duration given as seconds or as text with a unit (`500ms`, `30s`, `5m`, `1h`, `1d`);
    ValueError naming `key` (an option's path) when it is none, or not above zero."""
    if isinstance(value, bool):
        raise ValueError(f"expected seconds or a duration like 30s, 5m, 1h - at `$.{key}`")
    if isinstance(value, int | float):
        number = float(value)
    else:
        m = _DURATION.match(value)
        if m is None:
            raise ValueError(f"expected seconds or a duration like 30s, 5m, 1h - at `$.{key}`")
        number = float(m.group(1)) * _UNIT[m.group(2)]
    if number <= 0:
        raise ValueError(f"expected a duration above zero - at `$.{key}`")
    return number
