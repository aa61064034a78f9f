"""Where connectors, processors and formats register themselves by name.

A module registers with a decorator; the module itself is imported only when a
pattern names its type (see `_MODULES`), so a pattern that does not use MQTT
never imports paho.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


@dataclass(frozen=True)
class Spec:
    """A registered component: its kind, type name, options Struct and class."""

    kind: str  # "input" | "output" | "processor" | "format"
    name: str
    config: type[msgspec.Struct]
    cls: Any
    summary: str = ""


_REGISTRY: dict[tuple[str, str], Spec] = {}

# type name -> module that registers it (imported lazily)
_MODULES: dict[tuple[str, str], str] = {
    ("input", "http"): "wireway.connectors.http.input",
    ("input", "tcp"): "wireway.connectors.tcp.input",
    ("input", "mqtt"): "wireway.connectors.mqtt.input",
    ("input", "sensor_http"): "wireway.apps.sensor_ingest.http_input",
    ("output", "file"): "wireway.connectors.file.output",
    ("output", "mqtt"): "wireway.connectors.mqtt.output",
    ("output", "sql"): "wireway.connectors.sql.output",
    ("output", "redis"): "wireway.connectors.redis.output",
    ("output", "websocket"): "wireway.connectors.websocket.output",
    ("output", "sensor_state"): "wireway.apps.sensor_ingest.state_output",
    ("output", "sensor_alerts"): "wireway.apps.sensor_ingest.alerts_output",
    ("output", "stdout"): "wireway.connectors.stdout.output",
    ("output", "http_client"): "wireway.connectors.http_client.output",
    ("processor", "validate"): "wireway.processors.validate",
    ("processor", "dedupe"): "wireway.processors.dedupe",
    ("processor", "sensor_enrich"): "wireway.apps.sensor_ingest.enrich",
    ("processor", "transform"): "wireway.processors.transform",
    ("processor", "filter"): "wireway.processors.filter",
    ("processor", "python"): "wireway.processors.python",
}


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


def names(kind: str) -> list[str]:
    """Every type name of one kind whose module is present."""
    found = {n for (k, n), module in _MODULES.items() if k == kind and _present(module)}
    return sorted(found | {n for (k, n) in _REGISTRY if k == kind})


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def lookup(kind: str, name: str) -> Spec | None:
    """The spec for a type name, importing its module on first use."""
    key = (kind, name)
    if key not in _REGISTRY and key in _MODULES:
        importlib.import_module(_MODULES[key])
    return _REGISTRY.get(key)
