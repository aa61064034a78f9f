"""CEL expressions over the envelope, compiled once at load time."""

from __future__ import annotations

import re
import sys
import types
from typing import Any

# The `cel` package imports its REPL (prompt_toolkit, pygments: many megabytes resident) from
# its __init__; a placeholder for that one module keeps it out of every wireway process.
sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))
import cel  # noqa: E402

from wireway.expr_fast import ERROR, compile_simple  # noqa: E402

# Names an expression may use: the envelope's wire fields.
VARIABLES = (
    "payload",
    "metadata",
    "source",
    "destination",
    "messageType",
    "messageId",
    "timestamp",
    "version",
)
_POS = re.compile(r"<input>:(\d+):(\d+): (.*)")


class ExpressionError(ValueError):
    """An expression failed to compile; the message gives the position."""


class Expr:
    """A compiled CEL expression."""

    __slots__ = ("fast", "names", "narrow", "program", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError("expected a CEL expression (a non-empty string)")
        self.source = source
        try:
            self.program = cel.compile(source)
        except (ValueError, RuntimeError) as exc:
            raise ExpressionError(_describe(source, str(exc))) from exc
        # converting the context to CEL values is most of the cost: pass only what is used
        self.names = tuple(self.program.variables())
        self.narrow = {name: _fields_used(source, name) for name in self.names}
        self.fast = compile_simple(source)  # plain Python for the simple forms

    def evaluate(self, context: dict[str, Any]) -> Any:
        """Evaluate against an envelope context; raises on a missing key or type error."""
        if self.fast is not None:
            value = self.fast(context)
            if value is not ERROR:
                return value
            # let CEL raise its own error, with its own message
        return self.program.execute(self.context(context))

    def evaluate_with(self, context: dict[str, Any], functions: dict[str, Any]) -> Any:
        """Evaluate with extra functions CEL lacks (Python callables it calls by name,
        e.g. `max` over a list), passed only when the expression calls one."""
        if self.fast is None and functions.keys() & set(self.program.functions()):
            return self.program.execute({**self.context(context), **functions})
        return self.evaluate(context)

    def context(self, context: dict[str, Any]) -> dict[str, Any]:
        """Only the variables (and of a mapping, only the fields) the expression reads."""
        out: dict[str, Any] = {}
        for name in self.names:
            if name in context:
                value = context[name]
                fields = self.narrow[name]
                if fields is not None and isinstance(value, dict):
                    value = {k: value[k] for k in fields if k in value}
                out[name] = value
        return out

    def settled_by(self, partial: dict[str, Any]) -> bool | None:
        """The condition's value for every context that has these values, or None when
        it depends on more. Sound for CEL: a variable left out is an error, and an error
        changes no result that `&&`, `||` or `?:` settle without it, so a result reached
        without the rest holds whatever the rest is."""
        try:
            value = self.evaluate(partial)
        except Exception:  # noqa: BLE001  (it reads more than `partial` holds)
            return None
        return value if isinstance(value, bool) else None

    def test(self, context: dict[str, Any]) -> bool:
        """Evaluate as a condition: an error (say, a missing field) counts as false."""
        if self.fast is not None:
            return self.fast(context) is True
        try:
            return self.program.execute(self.context(context)) is True
        except Exception:  # noqa: BLE001
            return False


def _fields_used(source: str, name: str) -> frozenset[str] | None:
    """The fields of `name` the source reads as `name.field`, or None when it uses the
    value otherwise (`name[...]`, `size(name)`, a method like `name.all(...)`)."""
    fields = set()
    for m in re.finditer(rf"(?<![\w.]){re.escape(name)}\b", source):
        rest = re.match(r"\s*\.\s*([A-Za-z_]\w*)\s*(\()?", source[m.end() :])
        if rest is None or rest.group(2):
            return None
        fields.add(rest.group(1))
    return frozenset(fields)


def _describe(source: str, text: str) -> str:
    m = _POS.search(text)
    if not m:
        return f"invalid CEL expression {source!r}: {text.splitlines()[0]}"
    line, col, what = m.groups()
    where = f"column {col}" if line == "1" else f"line {line} column {col}"
    return f"CEL syntax error at {where} in {source!r}: {what}"
