"""The `services:` section: processes (and patterns) a deployment runs beside its patterns.

A pattern file may hold a `services:` mapping beside its other sections, and a file
holding only `services:` (e.g. `services.yaml` in the pattern folder) declares services
without a pattern. Names are unique across the deployment; `depends_on` must name
known services and form no cycle.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from wireway.config.yamlload import Document, join
from wireway.errors import ConfigError

NAME = r"^[A-Za-z0-9_.-]{1,64}$"


def _hostport(value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")


class Probe(msgspec.Struct, forbid_unknown_fields=True):
    """A check that a service is ready (`ready:`) or still alive (`live:`); exactly one
    of `tcp`, `http`, `file`, `log`, `exec`, `input`.

    - `tcp: HOST:PORT`: a connection is accepted.
    - `http: URL`: a GET answers 2xx.
    - `file: PATH`: the file exists (with `grows: true`: its size grew since the last check).
    - `log: REGEX`: a line of the service's output matches (readiness only).
    - `exec: [argv]`: the command exits 0 within `timeout`.
    - `input: "<pattern>.<input name>"`: that wireway input has produced a message
      (readiness only).

    A liveness probe runs every `interval` seconds; `failures` failed checks in a row
    restart the service. A readiness probe is tried every `interval` seconds until it
    passes (the service stays `starting` meanwhile).
    """

    tcp: str | None = None
    http: str | None = None
    file: str | None = None
    grows: bool = False
    log: str | None = None
    exec: list[str] | None = None
    input: str | None = None
    interval: Annotated[float, Meta(gt=0, description="seconds between checks")] = 1.0
    timeout: Annotated[float, Meta(gt=0, description="seconds one check may take")] = 2.0
    failures: Annotated[int, Meta(ge=1, description="failed checks in a row that restart")] = 3

    def __post_init__(self) -> None:
        kinds = [k for k in ("tcp", "http", "file", "log", "exec", "input") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("expected exactly one of tcp, http, file, log, exec, input")
        if self.tcp is not None:
            _hostport(self.tcp)
        if self.http is not None and not self.http.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        if self.log is not None:
            try:
                re.compile(self.log)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        if self.input is not None and "." not in self.input:
            raise ValueError('expected "<pattern>.<input name>"')

    @property
    def kind(self) -> str:
        return next(k for k in ("tcp", "http", "file", "log", "exec", "input") if getattr(self, k))


class Backoff(msgspec.Struct, forbid_unknown_fields=True):
    """Seconds between restarts: `initial`, doubled after each failed run up to `max`
    (then tried at `max` for ever), each randomly spread by +/- `jitter` (a fraction)."""

    initial: Annotated[float, Meta(gt=0)] = 1.0
    max: Annotated[float, Meta(gt=0)] = 60.0
    jitter: Annotated[float, Meta(ge=0, le=1)] = 0.1


class LeaseOptions(msgspec.Struct, forbid_unknown_fields=True):
    """A lease with its mode and the command that resets the resource when released
    (e.g. an interface back to managed mode).

    `$NAME` (no braces: `${...}` is read when the file loads) in `name`, `mode` and
    `reset` is read at each start from the service's environment (wireway's, its
    `env:`, the variables of the start request), so `iface:$IFACE` is the interface
    that run was given."""

    name: Annotated[str, Meta(min_length=1)]
    mode: str = ""
    reset: list[str] | None = None

    def __post_init__(self) -> None:
        if self.reset is not None and not self.reset:
            raise ValueError("expected a non-empty argv list - at `$.reset`")


class ServiceOptions(msgspec.Struct, forbid_unknown_fields=True):
    """One entry of `services:`, a process (or a pattern) wireway starts, watches and stops.

    Either `command` (an argv list; a string only with `shell: true`) or `pattern`
    (a pattern of this deployment: its inputs start once what it depends on is ready).

    - `depends_on`: services that must be *ready* before this one starts; stopping one
      of them stops this one first, and it comes back once they are ready again.
    - `ready` / `live`: probes (see Probe). Without `ready`, a service is ready once started.
    - `restart`: `no`, `on-failure` (exit code not 0, or killed) or `always`; restarts
      wait `backoff`, reset once the service stayed up `healthy_after` seconds.
    - `stop_signal` goes to the service's process group (and to the processes of the run
      that left it, found by their WIREWAY_SERVICE_RUN variable); SIGKILL follows
      after `stop_timeout`.
    - `leases`: named resources held one owner at a time (`iface:wlan2`, or
      `{name, mode, reset}`; `$NAME` in them is read from the service's environment
      at each start); a held lease is waited for up to `lease_timeout` seconds.
    - `on_restart`: what a wireway started again does with a process still running
      from before (found by its PID file): `adopt` it or `stop` it.
    - `on_failure: {refused: "restart <service>"}`: when a probe of this service (or an
      input of its pattern) reports a refused connection, restart that service.
    - `user` (when wireway runs as root), `env` (added to wireway's), `cwd`.
    """

    command: list[str] | str | None = None
    shell: bool = False
    pattern: str | None = None
    env: dict[str, str] = {}
    cwd: str | None = None
    user: str | None = None
    depends_on: list[str] = []
    ready: Probe | None = None
    live: Probe | None = None
    restart: Literal["no", "on-failure", "always"] = "on-failure"
    backoff: Backoff = msgspec.field(default_factory=Backoff)
    healthy_after: Annotated[float, Meta(ge=0)] = 30.0
    autostart: bool = True
    stop_signal: str = "SIGTERM"
    stop_timeout: Annotated[float, Meta(gt=0)] = 10.0
    leases: list[str | LeaseOptions] = []
    lease_timeout: Annotated[float, Meta(ge=0)] = 30.0
    on_restart: Literal["adopt", "stop"] = "adopt"
    on_failure: dict[Literal["refused"], str] = {}

    def __post_init__(self) -> None:
        if (self.command is None) == (self.pattern is None):
            raise ValueError("expected exactly one of `command` and `pattern`")
        if isinstance(self.command, str) and not self.shell:
            raise ValueError("a command string needs `shell: true` (or give an argv list) - at `$.command`")
        if isinstance(self.command, list) and (not self.command or self.shell):
            raise ValueError("expected a non-empty argv list (a string with `shell: true`) - at `$.command`")
        if self.stop_signal not in signal.Signals.__members__:
            raise ValueError(f"unknown signal {self.stop_signal!r} - at `$.stop_signal`")
        for probe, key in ((self.live, "live"), (self.ready, "ready")):
            if probe is not None and key == "live" and probe.kind in ("log", "input"):
                raise ValueError(f"a `{probe.kind}` probe checks readiness only - at `$.live`")
        if any(isinstance(x, str) and not x for x in self.leases):
            raise ValueError("a lease's name is empty - at `$.leases`")
        action = self.on_failure.get("refused")
        if action is not None and not re.fullmatch(r"restart [A-Za-z0-9_.-]+", action):
            raise ValueError("expected `restart <service>` - at `$.on_failure.refused`")

    def lease_list(self) -> list[LeaseOptions]:
        return [LeaseOptions(name=x) if isinstance(x, str) else x for x in self.leases]


@dataclass
class Service:
    """A checked entry of `services:`."""

    name: str
    options: ServiceOptions
    file: str
    line: int
    option_lines: dict[str, int] = field(default_factory=dict)


def load_services(
    doc: Document, convert: Callable[[Any, type[Any], str], Any], fail: Callable[[str, str], None]
) -> list[Service]:
    """The `services:` mapping of a document (errors reported through `fail`)."""
    data = doc.data.get("services") if isinstance(doc.data, dict) else None
    if data is None:
        return []
    if not isinstance(data, dict):
        fail("services", "expected a mapping of service names to their options")
        return []
    found: list[Service] = []
    for name, entry in data.items():
        path = join("services", str(name))
        if not re.match(NAME, str(name)):
            fail(path, "a service name is letters, digits, `_`, `.` or `-` (up to 64)")
            continue
        if not isinstance(entry, dict):
            fail(path, "expected a mapping with `command` or `pattern`")
            continue
        options = convert(entry, ServiceOptions, path)
        if options is None:
            continue
        lines = {str(k): doc.line(join(path, str(k))) for k in entry}
        found.append(Service(str(name), options, doc.file, doc.line(path), lines))
    return found


def check_services(services: list[Service], patterns: dict[str, list[str]]) -> list[ConfigError]:
    """Unique names, known dependencies, patterns, inputs and recovery targets, no cycle.
    `patterns`: each pattern's input names."""
    errors: list[ConfigError] = []
    by_name: dict[str, Service] = {}

    def error(svc: Service, key: str, message: str) -> None:
        line = svc.option_lines.get(key, svc.line)
        where = join(join("services", svc.name), key)
        errors.append(ConfigError(message, file=svc.file, line=line, path=where))

    for svc in services:
        if svc.name in by_name:
            other = by_name[svc.name]
            error(svc, "", f"service `{svc.name}` is also declared at {other.file}:{other.line}")
        by_name[svc.name] = svc
    for svc in services:
        for dep in svc.options.depends_on:
            if dep not in by_name:
                error(svc, "depends_on", f"unknown service `{dep}` (known: {', '.join(by_name) or 'none'})")
        target = svc.options.on_failure.get("refused", "").removeprefix("restart ")
        if target and target not in by_name:
            error(svc, "on_failure", f"unknown service `{target}`")
        if svc.options.pattern is not None and svc.options.pattern not in patterns:
            error(svc, "pattern", f"unknown pattern `{svc.options.pattern}` (known: {', '.join(patterns)})")
        wanted = svc.options.ready.input if svc.options.ready else None
        if wanted and not _known_input(wanted, patterns):
            error(svc, "ready", f"no input `{wanted}` (expected `<pattern>.<input name>`)")
    graph = {s.name: [d for d in s.options.depends_on if d in by_name] for s in services}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        error(by_name[cycle[0]], "depends_on", "dependency cycle: " + " -> ".join(cycle))
    return errors


def _known_input(name: str, patterns: dict[str, list[str]]) -> bool:
    for pattern, inputs in patterns.items():
        if name in inputs or any(name == f"{pattern}.{i}" for i in inputs):
            return True
    return False


def start_order(services: list[Service]) -> list[Service]:
    """Dependencies before their dependents (the graph is checked: no cycle)."""
    by_name = {s.name: s for s in services}
    graph = {s.name: s.options.depends_on for s in services}
    return [by_name[n] for n in TopologicalSorter(graph).static_order() if n in by_name]
