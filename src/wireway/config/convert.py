"""Options mappings into msgspec Structs, every error reported at the key it is about.

msgspec stops at the first error and names where it is as a path (`$.rate_limit.burst`,
`$.topics[1]`, `$.columns[...]`). Unknown keys are found first by walking the data
against the Struct's fields at every depth; then each failing value is reported at its
own key, removed, and the conversion tried again, so one run of `wireway check` lists
every mistake of an entry and each on the line of the key that is wrong.
"""

from __future__ import annotations

import copy
import difflib
import re
import typing
from collections.abc import Callable
from typing import Any

import msgspec
import msgspec.inspect as mi

from wireway.config.yamlload import join

Fail = Callable[[str, str], None]  # (key path, message)

_AT = re.compile(r"^(.*?)(?: - at `\$(.*)`)?$", re.S)
_MISSING = re.compile(r"Object missing required field `([^`]*)`")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
MAX_ATTEMPTS = 50  # errors reported per entry before giving up on it


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean `x`?)' when a close choice exists, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def convert(data: Any, struct: type[Any], path: str, fail: Fail, extra: tuple[str, ...] = ()) -> Any:
    """msgspec.convert of `data` into `struct`; None (after calling `fail`) if anything is wrong.

    `extra` names keys the caller handles itself (an interface's `type`, `name`...),
    offered in "did you mean" hints for unknown keys at the top level.
    """
    data = {} if data is None else copy.deepcopy(data)
    failed = _drop_unknown(data, mi.type_info(struct), path, fail, extra, top=True)
    dropped: set[str] = set()
    for _ in range(MAX_ATTEMPTS):
        try:
            value = msgspec.convert(data, struct, strict=False)
            return None if failed else value
        except msgspec.ValidationError as exc:
            failed = True
            match = _AT.match(str(exc))
            text, sub = (match.group(1), match.group(2) or "") if match else (str(exc), "")
            if missing := _MISSING.match(text):
                where = sub + "." + missing.group(1)
                if where not in dropped:
                    fail(path + where, "required key is missing")
                    return None
                # a required key removed for its bad value: give up on its parent instead
                if not sub or not _remove(data, sub):
                    return None
                dropped.add(sub)
                continue
            if sub.endswith("[...]"):  # a dict's value: find which key holds it
                sub = _dict_key(data, struct, sub) or sub[: -len("[...]")]
            fail(path + sub, _plain(text))
            target = _removable(sub)
            if not target or not _remove(data, target):
                return None
            dropped.add(target)
    return None


def _drop_unknown(
    data: Any, info: mi.Type, path: str, fail: Fail, extra: tuple[str, ...] = (), top: bool = False
) -> bool:
    """Report and remove keys no Struct field takes, at every depth; True if any was found."""
    while isinstance(info, mi.Metadata):
        info = info.type
    found = False
    if isinstance(info, mi.StructType) and isinstance(data, dict):
        fields = {f.encode_name: f for f in info.fields}
        for key in list(data):
            field = fields.get(key)
            if field is None:
                if top or info.forbid_unknown_fields:
                    fail(join(path, str(key)), f"unknown key{did_you_mean(str(key), [*fields, *extra])}")
                    del data[key]
                    found = True
            elif _drop_unknown(data[key], field.type, join(path, str(key)), fail):
                found = True
    elif isinstance(info, mi.UnionType):
        structs = [t for t in info.types if isinstance(t, mi.StructType)]
        if len(structs) == 1 and not any(isinstance(t, mi.DictType) for t in info.types):
            found = _drop_unknown(data, structs[0], path, fail)
    elif isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        if isinstance(data, list):
            for i, item in enumerate(data):
                found = _drop_unknown(item, info.item_type, join(path, i), fail) or found
    elif isinstance(info, mi.DictType) and isinstance(data, dict):
        for key, item in data.items():
            found = _drop_unknown(item, info.value_type, join(path, str(key)), fail) or found
    return found


def _segments(sub: str) -> list[str | int]:
    return [m.group(1) if m.group(1) is not None else _index(m.group(2)) for m in _SEGMENT.finditer(sub)]


def _index(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _removable(sub: str) -> str:
    """The deepest mapping key of `sub` with no list index after it (removing a list item
    would shift the indices of the errors still to come, so the whole list goes)."""
    parts = _segments(sub)
    while parts and not isinstance(parts[-1], str):
        parts.pop()
    return "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in parts)


def _remove(data: Any, sub: str) -> bool:
    """Delete the key at `sub` from `data`; False if it is not there."""
    parts = _segments(sub)
    if not parts:
        return False
    node = data
    for part in parts[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return _remove_top(data, parts)
    if isinstance(node, dict) and parts[-1] in node:
        del node[parts[-1]]
        return True
    return _remove_top(data, parts)


def _remove_top(data: Any, parts: list[str | int]) -> bool:
    # a key holding dots (`payload.seen_by`) splits into several segments: drop its top key
    if isinstance(data, dict) and parts and parts[0] in data:
        del data[parts[0]]
        return True
    return False


def _dict_key(data: Any, struct: type[Any], sub: str) -> str | None:
    """`$.columns[...]` -> `.columns.b`: the first key whose value fails on its own."""
    parts = _segments(sub)[:-1]
    node, annotation = data, struct
    for part in parts:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
        annotation = _member_type(annotation, part)
        if annotation is None:
            return None
    value_type = _member_type(annotation, "[...]")
    if not isinstance(node, dict) or value_type is None:
        return None
    for key, item in node.items():
        try:
            msgspec.convert(item, value_type, strict=False)
        except msgspec.ValidationError:
            return sub[: -len("[...]")] + f".{key}"
    return None


def _member_type(annotation: Any, part: str | int) -> Any:
    """The type of a Struct's field, a list's item or a dict's value (None if unknown)."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        fields = {f.encode_name: f.type for f in msgspec.structs.fields(annotation)}
        return fields.get(part) if isinstance(part, str) else None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (dict, typing.Mapping) and len(args) == 2:
        return args[1]
    if origin in (list, set, frozenset, tuple) and args:
        return args[0]
    if len(args) == 1:  # X | None
        return _member_type(args[0], part)
    return None


def _plain(text: str) -> str:
    return text[0].lower() + text[1:] if text else text
