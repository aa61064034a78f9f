"""Structured logging (structlog): readable console lines, or JSON with --log-format json."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog


def setup(level: str | None = None, fmt: str = "console") -> None:
    """Configure structlog once for the process."""
    name = (level or os.environ.get("WIREWAY_LOG_LEVEL") or "INFO").upper()
    numeric = getattr(logging, name, logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get(name: str) -> Any:
    """A logger bound to a component name."""
    return structlog.get_logger(component=name)
