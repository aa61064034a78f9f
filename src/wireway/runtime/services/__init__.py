"""Processes (and patterns) a deployment runs beside its patterns: the `services:` section."""

from wireway.runtime.services.supervisor import Supervisor

__all__ = ["Supervisor"]
