"""The sections of a pattern file, as msgspec Structs (the single source of truth)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from wireway.config.services import Service
from wireway.expr import Expr
from wireway.registry import lookup


class PatternInfo(msgspec.Struct, forbid_unknown_fields=True):
    """The `pattern:` section."""

    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="unique pattern name")]
    type: Annotated[str, Meta(description="free text: port-mapping, filesystem, message-bus...")] = "generic"
    version: str = "1.0"
    description: str = ""


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    """The `settings:` section: delivery behaviour shared by every output of the pattern."""

    timeout: Annotated[float, Meta(gt=0, description="seconds to drain at shutdown")] = 30.0
    retries: Annotated[int, Meta(ge=0, description="delivery attempts after the first")] = 3
    buffer_size: Annotated[int, Meta(ge=1, description="messages an output queue holds")] = 10000
    batch_size: Annotated[int, Meta(ge=1, description="messages an output writes at once")] = 500
    keep_in_memory: Annotated[
        int,
        Meta(
            ge=1,
            description="messages of a durable output's queue kept decoded in memory; the "
            "rest of a longer queue waits in the buffer file alone and is read back when "
            "its turn comes (so a big buffer_size absorbs a burst in bounded memory)",
        ),
    ] = 5000
    buffer: Literal["durable", "memory"] = "durable"
    buffer_max_bytes: Annotated[
        int,
        Meta(
            ge=0,
            description="bytes the durable buffer file may use (0: up to the disk's free "
            "space); beyond it, or once the disk is full, inputs are pushed back (HTTP 503 "
            "with Retry-After) until room returns",
        ),
    ] = 0
    on_damaged_buffer: Annotated[
        Literal["move_aside", "refuse"],
        Meta(
            description="a damaged buffer file at start: move it aside (what can still be "
            "read is kept) and start with a new one, or refuse to start"
        ),
    ] = "move_aside"
    breaker_threshold: Annotated[int, Meta(ge=1)] = 5
    breaker_timeout: Annotated[float, Meta(gt=0, description="seconds before a probe")] = 5.0
    backoff_base: Annotated[float, Meta(gt=0)] = 0.2
    backoff_max: Annotated[float, Meta(gt=0)] = 30.0


class RateLimit(msgspec.Struct, forbid_unknown_fields=True):
    """Requests allowed per key: a token bucket of `burst` refilled at `per_minute`."""

    per_minute: Annotated[float, Meta(gt=0)] = 100
    burst: Annotated[int, Meta(ge=1)] = 20


class Security(msgspec.Struct, forbid_unknown_fields=True):
    """The `security:` section, applied to the pattern's server-side inputs.

    `api_key` accepts the keys listed here and, in applications that keep keys
    (the sensor application), the keys stored hashed in their database, plus JWTs
    signed with `jwt_secret` (HS256) or the key in `jwt_public_key` (RS256): only that
    one algorithm is accepted, `exp` and `nbf` are checked (with `jwt_leeway`), and
    `aud` / `iss` when `jwt_audience` / `jwt_issuer` are set.
    """

    authentication: Literal["none", "api_key"] = "none"
    api_keys: list[str] = []
    header: str = "X-API-Key"
    max_body_bytes: Annotated[int, Meta(ge=1)] = 1024 * 1024
    rate_limit: RateLimit | None = None
    jwt_secret: str = ""
    jwt_public_key: str = ""
    # the process has one HTTP server: these apply to it (body_timeout: the shortest given)
    body_timeout: Annotated[
        float,
        Meta(gt=0, description="seconds for a request's headers and whole body to arrive (else 408)"),
    ] = 10.0
    tls_cert: Annotated[str, Meta(description="PEM certificate (chain) file: the server speaks HTTPS")] = ""
    tls_key: Annotated[str, Meta(description="PEM private key file of tls_cert")] = ""
    cors_origins: Annotated[
        list[str], Meta(description="origins whose pages may call the API (CORS); none: CORS off")
    ] = []
    jwt_audience: Annotated[str, Meta(description="a JWT's `aud` must name this (unchecked if empty)")] = ""
    jwt_issuer: Annotated[str, Meta(description="a JWT's `iss` must be this (unchecked if empty)")] = ""
    jwt_leeway: Annotated[
        float, Meta(ge=0, le=3600, description="seconds of clock skew allowed on `exp` and `nbf`")
    ] = 30.0


class MetricsOptions(msgspec.Struct, forbid_unknown_fields=True):
    """`monitoring.metrics` as a mapping."""

    enabled: bool = True
    per_device: Annotated[
        bool, Meta(description="add a device_id label where an app supports it (unbounded!)")
    ] = False


class Monitoring(msgspec.Struct, forbid_unknown_fields=True):
    """The `monitoring:` section. `metrics` is a bool or `{per_device: true}`."""

    metrics: bool | MetricsOptions = True
    logging: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    health_check: str = "/health"

    @property
    def per_device(self) -> bool:
        return isinstance(self.metrics, MetricsOptions) and self.metrics.per_device


# Keys every interface entry may carry besides its connector's own options.
INPUT_COMMON = ("type", "name", "format", "enabled")
OUTPUT_COMMON = ("type", "name", "format", "when", "enabled", "buffer", "parallel", "batch_size", "linger")
MAX_LINGER = 60.0
MAX_PARALLEL = 16


@dataclass
class Interface:
    """One entry of interfaces.input or interfaces.output, resolved."""

    kind: str
    type: str
    name: str
    format: str
    config: Any
    path: str
    line: int
    when: Expr | None = None
    buffer: str | None = None  # an output's own `buffer: memory` (the pattern's otherwise)
    parallel: int = 1  # batches an output delivers at once
    batch_size: int | None = None  # an output's own batch size (the pattern's otherwise)
    linger: float = 0.0  # seconds an output waits for a batch to fill (0: deliver at once)
    option_lines: dict[str, int] = field(default_factory=dict)  # entry key -> its line, for errors
    # a new `wireway.formats.codec.Codec` of the entry's `format:` (one per stream)
    new_codec: Callable[[], Any] = field(default=lambda: _json_codec())


@dataclass
class Step:
    """One processor step."""

    kind: str
    config: Any
    path: str
    line: int
    instance: Any = None


@dataclass
class Pattern:
    """A loaded, checked pattern file."""

    file: str
    base_dir: Path
    info: PatternInfo
    inputs: list[Interface] = field(default_factory=list)
    outputs: list[Interface] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    security: Security = field(default_factory=Security)
    monitoring: Monitoring = field(default_factory=Monitoring)
    # its file's `services:`; the first pattern of a deployment also carries those of
    # a services-only file (`services.yaml`) beside it
    services: list[Service] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.info.name


def _json_codec() -> Any:
    """The default format's codec, for entries built without the loader."""
    spec = lookup("format", "json")
    assert spec is not None
    return spec.cls(None)
