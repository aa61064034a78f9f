"""YAML loading that remembers the line of every key, with ${VAR} interpolation."""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from wireway.errors import ConfigError

# A pattern file holds hundreds of values; aliases may repeat a part, but an "alias bomb"
# (each anchor repeating the one before ten times) would expand to billions.
MAX_VALUES = 100_000
# Hostile files are refused before a document is built from them: by size before the
# file is read (the pure-Python parser needs seconds per megabyte), by nesting depth and
# by alias count while the composer walks the events (it recurses once per level).
MAX_BYTES = 512 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 1_000

_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")

# innermost first: a default may itself hold ${OTHER:-...}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^{}]*))?\}")


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Replace ${VAR} and ${VAR:-default}; a missing VAR without default is an error."""
    environ = os.environ if env is None else env

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise ValueError(f"environment variable {name} is not set (use ${{{name}:-default}})")
            return default
        return value

    for _ in range(10):
        new = _VAR.sub(sub, text)
        if new == text:
            break
        text = new
    return text


def join(path: str, key: str | int) -> str:
    """Extend a key path: join('a', 'b') -> 'a.b', join('a', 0) -> 'a[0]'."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Document:
    """A parsed YAML file: its data and the line of each key path."""

    def __init__(self, file: str, data: Any, lines: dict[str, int]) -> None:
        self.file = file
        self.data = data
        self.lines = lines
        self.bad_paths: set[str] = set()

    def line(self, path: str) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.lines.get("", 1)

    def error(self, path: str, message: str) -> ConfigError:
        """A ConfigError located at `path`."""
        return ConfigError(message, file=self.file, line=self.line(path), path=path)


def load_document(
    file: str, text: str, variables: dict[str, str] | None = None
) -> tuple[Document, list[ConfigError]]:
    """Parse YAML text; interpolation errors are collected, syntax errors raise ConfigError.

    `${VAR}` reads `variables` (default: the environment)."""
    if len(text) > MAX_BYTES:
        raise ConfigError(too_big(len(text)), file=file, line=1)
    try:
        node = compose(file, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"YAML syntax: {exc.problem}", file=file, line=line) from exc
    except yaml.reader.ReaderError as exc:  # a control character, before any token
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(
            f"YAML syntax: character {exc.character:#04x} is not allowed", file=file, line=line
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax: {exc}", file=file, line=1) from exc
    except RecursionError:
        raise ConfigError("YAML nested too deep", file=file, line=1) from None
    if node is not None:
        expanded_size(node, file)
    lines: dict[str, int] = {"": 1}
    errors: list[ConfigError] = []
    if node is None:
        return Document(file, None, lines), errors
    loader = yaml.SafeLoader("")

    def construct(n: yaml.Node, path: str) -> Any:
        try:
            return loader.construct_object(n, deep=True)
        except yaml.MarkedYAMLError as exc:  # an unknown tag (`!thing`), a bad !!binary...
            line = exc.problem_mark.line + 1 if exc.problem_mark else n.start_mark.line + 1
            raise ConfigError(f"YAML: {exc.problem}", file=file, line=line, path=path) from None
        except (ValueError, OverflowError) as exc:  # e.g. a !!timestamp out of range
            raise ConfigError(f"YAML: {exc}", file=file, line=n.start_mark.line + 1, path=path) from None

    def build(n: yaml.Node, path: str) -> Any:
        lines.setdefault(path, n.start_mark.line + 1)
        if not isinstance(n, yaml.ScalarNode) and n.tag not in _PLAIN_TAGS:  # `!!python/...`
            why = f"YAML: could not determine a constructor for the tag {n.tag!r}"
            raise ConfigError(why, file=file, line=n.start_mark.line + 1, path=path)
        if isinstance(n, yaml.MappingNode):
            loader.flatten_mapping(n)  # `<<: *defaults` merges the aliased mapping's keys
            out: dict[str, Any] = {}
            for k, v in n.value:
                key = str(construct(k, path))
                sub = join(path, key)
                lines[sub] = k.start_mark.line + 1
                out[key] = build(v, sub)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(v, join(path, i)) for i, v in enumerate(n.value)]
        assert isinstance(n, yaml.ScalarNode)
        if "${" in n.value:
            try:
                n = yaml.ScalarNode(n.tag, interpolate(n.value, variables), n.start_mark, n.end_mark, n.style)
                if n.style is None:  # plain scalar: re-resolve its type after interpolation
                    n.tag = loader.resolve(yaml.ScalarNode, n.value, (True, False))
            except ValueError as exc:
                errors.append(ConfigError(str(exc), file=file, line=n.start_mark.line + 1, path=path))
                return n.value  # keep the raw text so the error is not reported twice
        return construct(n, path)

    data = build(node, "")
    return Document(file, data, lines), errors


def too_big(size: int) -> str:
    return (
        f"the file is {size:,} bytes, over the limit of {MAX_BYTES:,} for a pattern file; "
        "split it into several files in one folder"
    )


class _BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]
    """A SafeLoader (typed Any by its stubs) whose composer refuses deep nesting and many
    aliases as it goes, naming the key path where the limit was reached."""

    def __init__(self, file: str, text: str) -> None:
        super().__init__(text)
        self.file = file
        self.depth = 0
        self.aliases = 0
        self.nodes = 0
        self.keys: list[str] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else 1
        if isinstance(index, yaml.ScalarNode):  # the value of a mapping key
            part = join(self.keys[-1] if self.keys else "", index.value)
        elif isinstance(index, int):
            part = join(self.keys[-1] if self.keys else "", index)
        else:  # the root, or a mapping key
            part = self.keys[-1] if self.keys else ""
        self.nodes += 1
        if self.nodes > MAX_VALUES:
            raise self._refuse(f"more than {MAX_VALUES:,} values in one file", line, part)
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise self._refuse(f"more than {MAX_ALIASES:,} YAML aliases (*name) in one file", line, part)
        elif isinstance(event, yaml.CollectionStartEvent) and self.depth >= MAX_DEPTH:
            raise self._refuse(f"YAML nested deeper than {MAX_DEPTH} levels", line, part)
        self.depth += 1
        self.keys.append(part)
        try:
            node: yaml.Node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
            self.keys.pop()
        return node

    def _refuse(self, message: str, line: int, path: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=line, path=path)


def compose(file: str, text: str) -> yaml.Node | None:
    """The YAML node graph of `text`, within MAX_DEPTH, MAX_ALIASES and MAX_VALUES."""
    loader = _BoundedLoader(file, text)
    try:
        node: yaml.Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def expanded_size(root: yaml.Node, file: str) -> int:
    """How many values the document holds once every alias is expanded.

    Counted per node once (an alias is the same node object as its anchor), so an
    alias bomb is measured without being expanded. Raises ConfigError past MAX_VALUES
    or for an alias inside the collection it names (which would expand forever).
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        line = node.start_mark.line + 1
        if key in open_nodes:
            raise ConfigError("YAML alias refers to a collection that holds it", file=file, line=line)
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise ConfigError(
                    f"YAML aliases expand to more than {MAX_VALUES:,} values; "
                    "write the repeated parts out or use fewer aliases",
                    file=file,
                    line=line,
                )
        open_nodes.discard(key)
        sizes[key] = total
        return total

    try:
        return size(root)
    except RecursionError:
        raise ConfigError("YAML nested too deep", file=file, line=1) from None
