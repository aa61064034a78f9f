"""Exponential backoff with full jitter."""

from __future__ import annotations

import random


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number `attempt` (1-based)."""
    return random.uniform(0, min(cap, base * 2 ** max(attempt - 1, 0)))
