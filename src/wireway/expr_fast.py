"""A fast path for the simple conditions and mappings most patterns use, with CEL's
semantics.

A little over 400 lines: the parser and the closures it compiles to must agree on
every rule of CEL they cover, so they are read together.

`a.b > 3 && has(x.y) || !(s == 'z')`, `"wifi-" + payload.mac` and the like (paths,
literals, comparisons, `&&`, `||`, `!`, `has()`, `+` chains holding a string literal)
are compiled to Python closures; anything else returns None and the expression runs
through the CEL library. Errors follow CEL: a missing field is an error, `false &&
error` is false, `true || error` is true, comparing values of different types is an
error except `==`/`!=` (which say false/true), `+` joins strings only (CEL converts
nothing: with a string literal in the chain, any other operand is an error). A
property test compares both on random expressions and contexts.

`compile_value` takes the subset that only reads and joins values (paths, literals,
string `+`): what it returns for a message's own values is what CEL returns for the
message converted to builtins whenever it is a plain str, int, float, bool or None
(conversion leaves those as they are), so `Reader` evaluates those expressions
without converting the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d+(?:[eE][+-]?\d+)?|\d+(?![\w.]))|(?P<str>'(?:[^'\\\n]|\\['\"\\])*'"
    r"|\"(?:[^\"\\\n]|\\['\"\\])*\")|(?P<op>&&|\|\||==|!=|<=|>=|[<>!().+-])|(?P<id>[A-Za-z_]\w*))"
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
PLAIN = (str, int, float, bool, type(None))  # values builtins conversion leaves as they are
NOT_PLAIN = object()  # Reader.plain: the expression needs the converted message
PLAIN_TREE_LIMIT = 64  # values of a mapping or list result checked before giving up


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
        self.values_only = True  # no operator but `+`: see compile_value

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
            self.values_only = False
            fns.append(self.and_())
        return fns[0] if len(fns) == 1 else _logic(fns, True)

    def and_(self) -> Fn:
        fns = [self.compare()]
        while self.peek() == "&&":
            self.take()
            self.values_only = False
            fns.append(self.compare())
        return fns[0] if len(fns) == 1 else _logic(fns, False)

    def unary(self) -> Fn:
        # CEL's `!` binds to the operand next to it: `!a == b` is `(!a) == b`
        if self.peek() == "!":
            self.take()
            self.values_only = False
            inner = self.unary()

            def not_(ctx: dict[str, Any]) -> Any:
                v = inner(ctx)
                return (not v) if isinstance(v, bool) else ERROR

            return not_
        return self.primary()

    def compare(self) -> Fn:
        left = self.additive()
        op = self.peek()
        if op not in ("==", "!=", "<", "<=", ">", ">="):
            return left
        self.take()
        self.values_only = False
        right = self.additive()
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

    def additive(self) -> Fn:
        """`a + "-" + b`: only a chain holding a string literal, whose result is a
        string when every operand is one and an error otherwise (CEL adds strings to
        strings only, and no sum of other types is a string)."""
        literal = self.i < len(self.t) and self.t[self.i][0] == "str"
        fns = [self.unary()]
        while self.peek() == "+":
            self.take()
            literal = literal or (self.i < len(self.t) and self.t[self.i][0] == "str")
            fns.append(self.unary())
        if self.peek() == "-":
            raise _Unsupported  # subtraction
        if len(fns) == 1:
            return fns[0]
        if not literal:
            raise _Unsupported  # numbers, lists, bytes: CEL's overloads and overflow
        return _join(fns)

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
            self.values_only = False

            def has(ctx: dict[str, Any]) -> Any:
                p = parent(ctx)
                return last in p if isinstance(p, dict) else ERROR

            return has
        if kind == "id":
            return _getter(self.path())
        raise _Unsupported


def _getter(parts: list[str]) -> Fn:
    head, rest = parts[0], parts[1:]

    def walk(v: Any, rest: list[str]) -> Any:
        for p in rest:
            if not isinstance(v, dict) or p not in v:
                return ERROR
            v = v[p]
        return v

    # one, two and three names (`payload.mac`, `payload.tak.type`) read without the loop
    if not rest:
        return lambda ctx: ctx.get(head, ERROR)
    if len(rest) == 1:
        (first,) = rest

        def get2(ctx: dict[str, Any]) -> Any:
            v = ctx.get(head, ERROR)
            return v.get(first, ERROR) if type(v) is dict else walk(v, rest)

        return get2
    if len(rest) == 2:
        first, second = rest

        def get3(ctx: dict[str, Any]) -> Any:
            v = ctx.get(head, ERROR)
            if type(v) is dict:
                v = v.get(first, ERROR)
                if type(v) is dict:
                    return v.get(second, ERROR)
                return walk(v, rest[1:])
            return walk(v, rest)

        return get3

    def get(ctx: dict[str, Any]) -> Any:
        return walk(ctx.get(head, ERROR), rest)

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


def _join(fns: list[Fn]) -> Fn:
    def join(ctx: dict[str, Any]) -> Any:
        parts = []
        for fn in fns:
            v = fn(ctx)
            if type(v) is not str:  # (ERROR included)
                return ERROR
            if not v.isascii():
                try:
                    v.encode()
                except UnicodeEncodeError:  # a lone surrogate: CEL cannot take the value
                    return ERROR
            parts.append(v)
        return "".join(parts)

    return join


def _compile(source: str) -> tuple[Fn, bool] | None:
    try:
        parser = _Parser(_tokens(source))
        return parser.parse(), parser.values_only
    except (_Unsupported, IndexError):
        return None


def compile_simple(source: str) -> Fn | None:
    """A Python function for `source`, or None when it is beyond the simple subset."""
    compiled = _compile(source)
    return compiled[0] if compiled is not None else None


def compile_value(source: str) -> Fn | None:
    """A Python function for a mapping that only reads and joins values (paths,
    literals, `+` of strings), or None."""
    compiled = _compile(source)
    return compiled[0] if compiled is not None and compiled[1] else None


class _Expr(Protocol):
    source: str

    def evaluate(self, context: dict[str, Any]) -> Any: ...


def light_context(msg: Any) -> dict[str, Any]:
    """A message's fields under their wire names, by reference (no conversion: its
    `metadata` stays a struct, which a path does not read into, so an expression
    reading it falls back to the converted context)."""
    return {
        "payload": msg.payload,
        "messageType": msg.message_type,
        "messageId": msg.message_id,
        "source": msg.source,
        "destination": msg.destination,
        "timestamp": msg.timestamp,
        "version": msg.version,
        "metadata": msg.metadata,
    }


class Reader:
    """An expression evaluated for a message: on the message's own values when
    `compile_value` takes it and the result is a plain value (or a small mapping or
    list of them, returned by reference: read it, do not change it), else through
    `Expr` on the converted context (`full`, made only when needed)."""

    __slots__ = ("expr", "light")

    def __init__(self, expr: _Expr) -> None:
        self.expr = expr
        self.light = compile_value(expr.source)

    def plain(self, light: dict[str, Any]) -> Any:
        """The value from the message's own values, or `NOT_PLAIN`."""
        fast = self.light
        if fast is None:
            return NOT_PLAIN
        value = fast(light)
        kind = type(value)
        if kind in PLAIN or ((kind is dict or kind is list) and _plain_tree(value)):
            return value
        return NOT_PLAIN

    def __call__(self, light: dict[str, Any], full: Callable[[], dict[str, Any]]) -> Any:
        value = self.plain(light)
        return value if value is not NOT_PLAIN else self.expr.evaluate(full())


def _plain_tree(value: dict[str, Any] | list[Any]) -> bool:
    """Whether a small mapping or list holds only string keys, plain values and more
    of the same, so that converting it to builtins gives an equal copy."""
    todo: list[Any] = [value]
    seen = 0
    while todo:
        item = todo.pop()
        kind = type(item)
        if kind is dict:
            if not all(type(k) is str for k in item):
                return False
            todo.extend(item.values())
        elif kind is list:
            todo.extend(item)
        elif kind not in PLAIN:
            return False
        seen += 1
        if seen > PLAIN_TREE_LIMIT:
            return False
    return True
