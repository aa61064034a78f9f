"""`validate`: JSON Schema validation of the payload (or the whole envelope)."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import msgspec

from wireway.envelope import Message, parse_timestamp
from wireway.errors import ConfigError
from wireway.processors.base import Processor, StepResult
from wireway.registry import register_processor

if TYPE_CHECKING:  # jsonschema (a large import) only when a pattern validates with it
    import jsonschema


class ValidateConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Options of `validate`.

    `schema` is a JSON Schema file (relative to the pattern file) or the name of a
    built-in schema (see `wireway/schemas/`).
    """

    __shorthand__: ClassVar[str] = "schema"
    schema: str
    target: Literal["payload", "envelope"] = "payload"


def builtin_schemas() -> list[str]:
    """Names of the schemas that ship with wireway."""
    folder = resources.files("wireway") / "schemas"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_schema(ref: str, base_dir: Path) -> dict[str, Any]:
    """Read a schema from a file beside the pattern or from the built-ins."""
    if "/" not in ref and not ref.endswith(".json") and ref in builtin_schemas():
        text = (resources.files("wireway") / "schemas" / f"{ref}.json").read_text("utf-8")
    else:
        path = (base_dir / ref).resolve()
        if not path.is_file():
            known = ", ".join(builtin_schemas()) or "none"
            raise ConfigError(
                f"no schema file {ref} beside the pattern file, nor a built-in schema ({known})",
                path="schema",
            )
        text = path.read_text("utf-8")
    import jsonschema

    try:
        schema = json.loads(text)
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except (ValueError, jsonschema.SchemaError) as exc:
        raise ConfigError(f"invalid JSON Schema {ref}: {exc}", path="schema") from exc
    return schema  # type: ignore[no-any-return]


def describe(error: jsonschema.ValidationError, root: str) -> str:
    """'payload.items[2].qty: -1 is less than the minimum of 0'."""
    path = root
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return f"{path}: {error.message}"


def _rfc3339(validator: Any, wanted: Any, instance: Any, schema: Any) -> Any:
    import jsonschema

    if wanted and isinstance(instance, str):
        try:
            parse_timestamp(instance)
        except ValueError:
            yield jsonschema.ValidationError(f"{instance!r} is not an RFC 3339 timestamp")


def _max_future(validator: Any, seconds: Any, instance: Any, schema: Any) -> Any:
    import jsonschema

    if isinstance(instance, str):
        try:
            ahead = parse_timestamp(instance) - time.time()
        except ValueError:
            return
        if ahead > seconds:
            yield jsonschema.ValidationError(f"{instance!r} is more than {seconds} seconds in the future")


# wireway's own keywords: `rfc3339: true` and `maxFutureSeconds: N` on strings
EXTRA_KEYWORDS = {"rfc3339": _rfc3339, "maxFutureSeconds": _max_future}


def make_validator(schema: dict[str, Any]) -> Any:
    """A validator for `schema` that also knows wireway's keywords."""
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    cls = jsonschema.validators.extend(base, EXTRA_KEYWORDS)
    return cls(schema, format_checker=base.FORMAT_CHECKER)


@register_processor("validate", config=ValidateConfig)
class Validate(Processor):
    """Reject messages whose payload does not match a JSON Schema, naming every field."""

    def __init__(self, config: ValidateConfig, *, base_dir: Path) -> None:
        self.validator = make_validator(load_schema(config.schema, base_dir))
        self.envelope = config.target == "envelope"

    def errors(self, msg: Message) -> list[str]:
        """Every rule the message breaks, one string per failing field."""
        value = msg.to_context() if self.envelope else msg.payload
        root = "" if self.envelope else "payload"
        found = sorted(self.validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
        return [describe(e, root).lstrip(".") or "envelope" for e in found]

    async def process(self, batch: list[Message]) -> StepResult:
        passed: list[Message] = []
        failed: list[tuple[Message, list[str]]] = []
        for msg in batch:
            errs = self.errors(msg)
            if errs:
                failed.append((msg, errs))
            else:
                passed.append(msg)
        return StepResult(passed, failed)
