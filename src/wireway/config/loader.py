"""Load pattern files into checked `Pattern`s, collecting every error with its line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wireway import registry
from wireway.config.convert import convert, did_you_mean
from wireway.config.model import (
    INPUT_COMMON,
    MAX_LINGER,
    MAX_PARALLEL,
    OUTPUT_COMMON,
    Interface,
    Monitoring,
    Pattern,
    PatternInfo,
    Security,
    Settings,
    Step,
)
from wireway.config.services import Service, check_services, load_services
from wireway.config.yamlload import MAX_BYTES, Document, join, load_document, too_big
from wireway.errors import ConfigError
from wireway.expr import Expr, ExpressionError

SECTIONS = ("pattern", "interfaces", "processors", "settings", "security", "monitoring", "services")


class _Loader:
    def __init__(self, doc: Document, base_dir: Path) -> None:
        self.doc = doc
        self.base_dir = base_dir
        self.errors: list[ConfigError] = []
        self.services: list[Service] = []

    def fail(self, path: str, message: str) -> None:
        if path in self.doc.bad_paths:
            return  # already reported: its ${VAR} could not be resolved
        self.errors.append(self.doc.error(path, message))

    def convert(self, data: Any, struct: type[Any], path: str, extra: tuple[str, ...] = ()) -> Any:
        """`data` as a `struct`, or None with every error reported at its own key."""
        return convert(data, struct, path, self.fail, extra)

    def section(self, key: str, struct: type[Any]) -> Any:
        data = self.doc.data.get(key)
        if data is not None and not isinstance(data, dict):
            self.fail(key, "expected a mapping")
            return struct() if key != "pattern" else None
        return self.convert(data, struct, key)

    def interface(self, kind: str, entry: Any, path: str, pattern: str) -> Interface | None:
        common = OUTPUT_COMMON if kind == "output" else INPUT_COMMON
        if not isinstance(entry, dict):
            self.fail(path, "expected a mapping with a `type`")
            return None
        enabled = entry.get("enabled", True)
        if enabled in (False, "false", "off", "no", 0, "0"):
            return None  # switched off, e.g. `enabled: ${WIREWAY_MQTT_ENABLED:-true}`
        type_ = entry.get("type")
        if not isinstance(type_, str):
            self.fail(join(path, "type"), f"required; one of: {', '.join(registry.names(kind))}")
            return None
        spec = registry.lookup(kind, type_)
        if spec is None:
            known = registry.names(kind)
            hint = did_you_mean(type_, known) or f" (known: {', '.join(known)})"
            self.fail(join(path, "type"), f"unknown {kind} type `{type_}`{hint}")
            return None
        default_format = getattr(spec.cls, "default_format", "json")
        fmt, new_codec = self.format(entry.get("format", default_format), join(path, "format"), spec.cls)
        name = entry.get("name") or ""  # a default one is given once every entry is known
        when = None
        if kind == "output" and entry.get("when") is not None:
            try:
                when = Expr(entry["when"])
            except ExpressionError as exc:
                self.fail(join(path, "when"), str(exc))
        buffer = entry.get("buffer")
        if kind == "output" and buffer not in (None, "memory", "durable"):
            self.fail(join(path, "buffer"), "expected memory or durable")
        parallel = entry.get("parallel", 1) if kind == "output" else 1
        if type(parallel) is not int or not 1 <= parallel <= MAX_PARALLEL:
            self.fail(join(path, "parallel"), f"expected an integer from 1 to {MAX_PARALLEL}")
            parallel = 1
        batch_size = entry.get("batch_size") if kind == "output" else None
        if batch_size is not None and (type(batch_size) is not int or batch_size < 1):
            self.fail(join(path, "batch_size"), "expected a positive integer")
            batch_size = None
        linger = entry.get("linger", 0) if kind == "output" else 0
        if type(linger) not in (int, float) or not 0 <= linger <= MAX_LINGER:
            self.fail(join(path, "linger"), f"expected seconds from 0 to {MAX_LINGER:g}")
            linger = 0
        options = {k: v for k, v in entry.items() if k not in common}
        config = self.convert(options, spec.config, path, extra=common)
        if config is None:
            return None
        line = self.doc.line(path)
        iface = Interface(
            kind, type_, str(name), fmt, config, path, line, when, buffer, parallel, batch_size, linger
        )
        if new_codec is not None:
            iface.new_codec = new_codec
        iface.option_lines = {str(key): self.doc.line(join(path, str(key))) for key in entry}
        return iface

    def format(self, entry: Any, path: str, cls: Any) -> tuple[str, Callable[[], Any] | None]:
        """An entry's `format:` (a name, or a mapping of a `type` and its options) as its
        name and a factory of codecs; the connector says which formats it can use."""
        options: dict[str, Any] = {}
        if isinstance(entry, dict):
            options = {k: v for k, v in entry.items() if k != "type"}
            entry = entry.get("type")
            path = join(path, "type")
        known = registry.names("format")
        usable = [name for name in getattr(cls, "formats", None) or known if name in known]
        if not isinstance(entry, str) or entry not in usable:
            if entry in known:
                takes = ", ".join(usable)
                self.fail(path, f"format `{entry}` cannot be used here (this connector takes: {takes})")
            else:
                hint = did_you_mean(str(entry), known) or f" (known: {', '.join(known)})"
                self.fail(path, f"unknown format `{entry}`{hint}")
            return "json", None
        spec = registry.lookup("format", entry)
        if spec is None:
            return entry, None
        config = self.convert(options, spec.config, path.removesuffix(".type"))
        if config is None:
            return entry, None
        codec_cls = spec.cls
        return entry, lambda: codec_cls(config)

    def step(self, entry: Any, path: str) -> Step | None:
        if not isinstance(entry, dict) or len(entry) != 1:
            self.fail(path, "expected one `kind: options` pair, like `- validate: {schema: x.json}`")
            return None
        ((kind, options),) = entry.items()
        spec = registry.lookup("processor", kind)
        if spec is None:
            known = registry.names("processor")
            hint = did_you_mean(kind, known) or f" (known: {', '.join(known)})"
            self.fail(join(path, kind), f"unknown processor{hint}")
            return None
        shorthand = getattr(spec.config, "__shorthand__", None)
        if shorthand and not isinstance(options, dict):
            options = {shorthand: options}
        config = self.convert(options, spec.config, join(path, kind))
        if config is None:
            return None
        step = Step(kind, config, join(path, kind), self.doc.line(path))
        try:
            step.instance = spec.cls(config, base_dir=self.base_dir)
        except ConfigError as exc:
            self.fail(join(step.path, exc.path) if exc.path else step.path, exc.message)
        except (ValueError, ImportError, OSError) as exc:
            self.fail(step.path, str(exc))
        return step

    def load(self) -> Pattern | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.fail("", "a pattern file must be a mapping with `pattern:` and `interfaces:`")
            return None
        for key in data:
            if key not in SECTIONS:
                self.fail(str(key), f"unknown section{did_you_mean(str(key), SECTIONS)}")
        self.services = load_services(self.doc, self.convert, self.fail)
        if "pattern" not in data:
            self.fail("pattern", "required section is missing")
            return None
        info = self.section("pattern", PatternInfo)
        settings = self.section("settings", Settings) or Settings()
        security = self.section("security", Security) or Security()
        monitoring = self.section("monitoring", Monitoring) or Monitoring()
        name = info.name if info else "pattern"
        pat = Pattern(self.doc.file, self.base_dir, info or PatternInfo(name="invalid"))
        pat.settings, pat.security, pat.monitoring = settings, security, monitoring
        pat.services = self.services
        ifaces = data.get("interfaces")
        if not isinstance(ifaces, dict):
            self.fail("interfaces", "required: a mapping with `input:` and `output:` lists")
            ifaces = {}
        for key in ifaces:
            if key not in ("input", "output"):
                self.fail(join("interfaces", str(key)), "unknown key (expected input or output)")
        for kind in ("input", "output"):
            entries = ifaces.get(kind) or []
            path = join("interfaces", kind)
            if not isinstance(entries, list) or not entries:
                if ifaces:
                    self.fail(path, f"expected a non-empty list of {kind}s")
                continue
            for i, entry in enumerate(entries):
                iface = self.interface(kind, entry, join(path, i), name)
                if iface is not None:
                    (pat.inputs if kind == "input" else pat.outputs).append(iface)
        self._name(pat.inputs, "input", name)
        self._name(pat.outputs, "output", name)
        steps = data.get("processors") or []
        if not isinstance(steps, list):
            self.fail("processors", "expected a list of steps")
            steps = []
        for i, entry in enumerate(steps):
            step = self.step(entry, join("processors", i))
            if step is not None:
                if hasattr(step.instance, "pattern"):
                    step.instance.pattern = name  # for its metrics and events
                pat.steps.append(step)
        return pat if info else None

    def _name(self, ifaces: list[Interface], kind: str, pattern: str) -> None:
        """Explicit names must differ; an entry without one is `<pattern>.<type>`, then
        `<pattern>.<type>.2`, `.3`... for the next of the same type (the first keeps the
        plain name, so adding a second output leaves the first one's queue where it was)."""
        taken: set[str] = set()
        for iface in ifaces:
            if not iface.name:
                continue
            if iface.name in taken:
                self.fail(join(iface.path, "name"), f"{kind} name `{iface.name}` is used twice")
            taken.add(iface.name)
        for iface in ifaces:
            if iface.name:
                continue
            name, count = f"{pattern}.{iface.type}", 1
            while name in taken:
                count += 1
                name = f"{pattern}.{iface.type}.{count}"
            iface.name = name
            taken.add(name)


def load_pattern(
    path: Path, variables: dict[str, str] | None = None
) -> tuple[Pattern | None, list[ConfigError]]:
    """Load one pattern file; returns the pattern (None if unusable) and every error.

    `${VAR}` reads `variables` (default: the environment)."""
    pattern, _, errors = _load_file(path, variables)
    return pattern, errors


def _load_file(
    path: Path, variables: dict[str, str] | None
) -> tuple[Pattern | None, list[Service], list[ConfigError]]:
    """A pattern file, or a file of `services:` alone (its services, no pattern)."""
    file = str(path)
    try:
        with path.open("rb") as f:  # at most one byte past the limit, whatever the file is
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        return None, [], [ConfigError(f"cannot read: {exc.strerror}", file=file)]
    if len(raw) > MAX_BYTES:
        size = max(len(raw), path.stat().st_size) if path.is_file() else len(raw)
        return None, [], [ConfigError(too_big(size), file=file, line=1)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [], [ConfigError(f"not UTF-8 text (byte {exc.start})", file=file, line=line)]
    try:
        doc, errors = load_document(file, text, variables)
    except ConfigError as exc:
        return None, [], [exc]
    loader = _Loader(doc, path.parent.resolve())
    loader.errors.extend(errors)
    doc.bad_paths.update(e.path for e in errors)
    if isinstance(doc.data, dict) and list(doc.data) == ["services"]:
        services = load_services(doc, loader.convert, loader.fail)
        errs = sorted(loader.errors, key=lambda e: e.line)
        return None, services, errs
    pattern = loader.load()
    errs = sorted(loader.errors, key=lambda e: e.line)
    return (pattern if not errs else None), [], errs


def pattern_files(path: Path) -> list[Path]:
    """One file, or every *.yaml / *.yml in a folder (sorted)."""
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    return [path]


def load_deployment(
    path: Path, variables: dict[str, str] | None = None
) -> tuple[list[Pattern], list[ConfigError]]:
    """Load a file or a folder; also checks conflicts between patterns. `${VAR}` reads
    `variables` (default: the environment)."""
    if not path.exists():
        return [], [ConfigError("no such file or folder", file=str(path))]
    files = pattern_files(path)
    if not files:
        return [], [ConfigError("no *.yaml pattern files in this folder", file=str(path))]
    patterns: list[Pattern] = []
    errors: list[ConfigError] = []
    alone: list[Service] = []  # from files of `services:` alone
    for file in files:
        pattern, services, errs = _load_file(file, variables)
        errors.extend(errs)
        alone.extend(services)
        if pattern is not None:
            patterns.append(pattern)
    errors.extend(_conflicts(patterns))
    if alone and not patterns and not errors:
        errors.append(ConfigError("services need a pattern beside them", file=str(path)))
    if patterns:
        patterns[0].services = alone + patterns[0].services
    every = [s for p in patterns for s in p.services]
    errors.extend(check_services(every, {p.name: [i.name for i in p.inputs] for p in patterns}))
    return patterns, errors


def _conflicts(patterns: list[Pattern]) -> list[ConfigError]:
    """Two interfaces that bind the same port, route or written file."""
    errors: list[ConfigError] = []
    owners: dict[str, tuple[Pattern, Interface]] = {}
    names: dict[str, Pattern] = {}
    for pat in patterns:
        if pat.name in names:
            errors.append(
                ConfigError(
                    f"pattern name `{pat.name}` is also used by {names[pat.name].file}",
                    file=pat.file,
                    line=1,
                    path="pattern.name",
                )
            )
        names[pat.name] = pat
        for iface in [*pat.inputs, *pat.outputs]:
            resources = getattr(iface.config, "resources", None)
            for res in resources(pat.base_dir) if resources else []:
                if res in owners:
                    other_pat, other = owners[res]
                    where = f"{other_pat.file}:{other.option_lines.get('address', other.line)}"
                    errors.append(
                        ConfigError(
                            f"{res} is also used by {where} {join(other.path, 'address')}",
                            file=pat.file,
                            line=iface.option_lines.get("address", iface.line),
                            path=join(iface.path, "address"),
                        )
                    )
                else:
                    owners[res] = (pat, iface)
    return errors
