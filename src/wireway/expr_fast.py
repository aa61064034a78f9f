"""A fast path for the simple conditions most patterns use, with CEL's semantics.

`a.b > 3 && has(x.y) || !(s == 'z')` and the like (paths, literals, comparisons,
`&&`, `||`, `!`, `has()`) are compiled to Python closures; anything else returns None
and the expression runs through the CEL library. Errors follow CEL: a missing field
is an error, `false && error` is false, `true || error` is true, comparing values of
different types is an error except `==`/`!=` (which say false/true). A property test
compares both on random expressions and contexts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d+(?:[eE][+-]?\d+)?|\d+(?![\w.]))|(?P<str>'(?:[^'\\\n]|\\['\"\\])*'"
    r"|\"(?:[^\"\\\n]|\\['\"\\])*\")|(?P<op>&&|\|\||==|!=|<=|>=|[<>!().-])|(?P<id>[A-Za-z_]\w*))"
)
_KEYWORDS = {"true": True, "false": False, "null": None}
_RESERVED = {
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
}


class _Error:
    """A CEL evaluation error travelling through the expression."""


ERROR = _Error()
Fn = Callable[[dict[str, Any]], Any]


class _Unsupported(Exception):
    pass


def _tokens(source: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    source = source.rstrip()
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None or m.end() == pos:
            raise _Unsupported
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _equal(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _order(op: str, a: Any, b: Any) -> Any:
    if not ((_number(a) and _number(b)) or (type(a) is type(b) and isinstance(a, str | bool))):
        return ERROR
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.t[self.i][1] if self.i < len(self.t) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.t) or (value is not None and self.t[self.i][1] != value):
            raise _Unsupported
        self.i += 1
        return self.t[self.i - 1]

    def parse(self) -> Fn:
        fn = self.or_()
        if self.i != len(self.t):
            raise _Unsupported
        return fn

    def or_(self) -> Fn:
        fns = [self.and_()]
        while self.peek() == "||":
            self.take()
            fns.append(self.and_())
        return fns[0] if len(fns) == 1 else _logic(fns, True)

    def and_(self) -> Fn:
        fns = [self.unary()]
        while self.peek() == "&&":
            self.take()
            fns.append(self.unary())
        return fns[0] if len(fns) == 1 else _logic(fns, False)

    def unary(self) -> Fn:
        if self.peek() == "!":
            self.take()
            inner = self.unary()

            def not_(ctx: dict[str, Any]) -> Any:
                v = inner(ctx)
                return (not v) if isinstance(v, bool) else ERROR

            return not_
        return self.compare()

    def compare(self) -> Fn:
        left = self.primary()
        op = self.peek()
        if op not in ("==", "!=", "<", "<=", ">", ">="):
            return left
        self.take()
        right = self.primary()
        if self.peek() in ("==", "!=", "<", "<=", ">", ">="):
            raise _Unsupported  # chained comparisons: let CEL say what it thinks

        def cmp(ctx: dict[str, Any]) -> Any:
            a, b = left(ctx), right(ctx)
            if a is ERROR or b is ERROR:
                return ERROR
            if op == "==":
                return _equal(a, b)
            if op == "!=":
                return not _equal(a, b)
            return _order(op, a, b)

        return cmp

    def path(self) -> list[str]:
        kind, name = self.take()
        if kind != "id" or name in _KEYWORDS or name in _RESERVED:
            raise _Unsupported
        parts = [name]
        while self.peek() == ".":
            self.take()
            kind, field = self.take()
            if kind != "id" or field in _RESERVED:
                raise _Unsupported
            parts.append(field)
        if self.peek() in ("(", "["):
            raise _Unsupported  # a method call or an index
        return parts

    def primary(self) -> Fn:
        kind, value = self.t[self.i] if self.i < len(self.t) else ("", "")
        if value == "(":
            self.take()
            inner = self.or_()
            self.take(")")
            return inner
        sign = 1
        if value == "-" and self.i + 1 < len(self.t) and self.t[self.i + 1][0] == "num":
            self.take()
            sign, (kind, value) = -1, self.t[self.i]
        if kind == "num":
            self.take()
            number: Any = float(value) if "." in value or "e" in value.lower() else int(value)
            literal = sign * number
            return lambda ctx: literal
        if kind == "str":
            self.take()
            text = re.sub(r"\\(['\"\\])", r"\1", value[1:-1])
            return lambda ctx: text
        if kind == "id" and value in _KEYWORDS:
            self.take()
            constant = _KEYWORDS[value]
            return lambda ctx: constant
        if kind == "id" and value == "has" and self.i + 1 < len(self.t) and self.t[self.i + 1][1] == "(":
            self.take()
            self.take("(")
            parts = self.path()
            self.take(")")
            if len(parts) < 2:
                raise _Unsupported
            parent = _getter(parts[:-1])
            last = parts[-1]

            def has(ctx: dict[str, Any]) -> Any:
                p = parent(ctx)
                return last in p if isinstance(p, dict) else ERROR

            return has
        if kind == "id":
            return _getter(self.path())
        raise _Unsupported


def _getter(parts: list[str]) -> Fn:
    head, rest = parts[0], parts[1:]

    def get(ctx: dict[str, Any]) -> Any:
        if head not in ctx:
            return ERROR
        v = ctx[head]
        for p in rest:
            if not isinstance(v, dict) or p not in v:
                return ERROR
            v = v[p]
        return v

    return get


def _logic(fns: list[Fn], is_or: bool) -> Fn:
    def run(ctx: dict[str, Any]) -> Any:
        failed = False
        for fn in fns:
            v = fn(ctx)
            if v is is_or:  # True for ||, False for &&: decides whatever the rest is
                return v
            if not isinstance(v, bool):
                failed = True
        return ERROR if failed else (not is_or)

    return run


def compile_simple(source: str) -> Fn | None:
    """A Python function for `source`, or None when it is beyond the simple subset."""
    try:
        return _Parser(_tokens(source)).parse()
    except (_Unsupported, IndexError):
        return None
