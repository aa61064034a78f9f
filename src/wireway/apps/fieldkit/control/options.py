"""Options of the `fieldkit_control` step: what the control API serves and may start."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import Meta

from wireway.connectors.hostport import parse_hostport

INTERFACE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")  # a Linux interface name (IFNAMSIZ - 1)
SCRIPT = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def default_scripts() -> dict[str, list[str]]:
    return {"gps": ["gpsd", "mavgps"], "kismet": ["kismet", "wigletotak"]}


class ControlOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The field kit's control API: the kit's Node service's routes (`/api/webhook/...`)
    and its WebSocket (`/webhook`) on `listen` (default port 8092), over the services
    of the deployment (its `services:` section). Messages pass the step unchanged.

    `scripts` maps each name the page sends to the services it starts, in order (each
    starts what it depends on first, and is ready before the next); `both` is every
    script's services, `gps` first. Stopping a script stops its services in reverse
    order (what depends on one is stopped before it). Options of `run-script` reach
    the services started as environment variables: `interface` (a name matching
    `^[a-zA-Z0-9_.-]{1,15}$`) as `interface_env`, `config` (a file that must lie
    under `config_dir`, symbolic links resolved) as `config_env`; anything else is
    refused with 400 and nothing starts.

    With `api_key` set (the kit's admin key) every route and the WebSocket need it
    (`X-API-Key` header, `Authorization: Bearer`, or `?key=` on the WebSocket; 401
    otherwise). Each client may make `rate_limit` requests a minute (429 beyond).
    """

    listen: Annotated[str, Meta(description="HOST:PORT of the control API (empty: off)")] = "0.0.0.0:8092"
    api_key: Annotated[str, Meta(description="admin key the API asks for (empty: none)")] = ""
    scripts: Annotated[
        dict[str, list[str]], Meta(description="script name -> the services it starts, in order")
    ] = msgspec.field(default_factory=default_scripts)
    interface_env: Annotated[str, Meta(description="variable the `interface` option is given as")] = "IFACE"
    config_env: Annotated[str, Meta(description="variable the `config` option is given as")] = "KISMET_CONFIG"
    config_dir: Annotated[str, Meta(description="folder a `config` option must lie under")] = "/etc/kismet"
    data_paths: Annotated[
        dict[str, str], Meta(description="paths `/api/webhook/info` shows (name -> path)")
    ] = {}
    versions: Annotated[
        dict[str, list[str]],
        Meta(description="program -> the command printing its version (run when on PATH)"),
    ] = msgspec.field(default_factory=lambda: {"kismet": ["kismet", "--version"], "gpsd": ["gpsd", "-V"]})
    rate_limit: Annotated[int, Meta(ge=1, description="requests a minute per client")] = 120
    start_timeout: Annotated[
        float, Meta(gt=0, description="seconds run-script waits for its services to be ready (then 500)")
    ] = 60.0
    kismet_input: Annotated[str, Meta(description="the kismet input the data routes read (empty: any)")] = ""

    def __post_init__(self) -> None:
        if self.listen:
            try:
                parse_hostport(self.listen)
            except ValueError:
                raise ValueError("expected HOST:PORT - at `$.listen`") from None
        if not self.scripts:
            raise ValueError("expected at least one script - at `$.scripts`")
        for name, services in self.scripts.items():
            if not SCRIPT.fullmatch(name) or name == "both":
                raise ValueError(
                    f"a script name is lowercase letters, digits, `_` or `-` - at `$.scripts.{name}`"
                )
            if not services:
                raise ValueError(f"expected the services it starts - at `$.scripts.{name}`")
        for key in ("interface_env", "config_env"):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", getattr(self, key)):
                raise ValueError(f"expected an environment variable name - at `$.{key}`")

    def script_names(self) -> list[str]:
        return [*self.scripts, "both"]

    def services_of(self, script: str) -> list[str]:
        """The services a script starts, in order (`both`: every script's, `gps` first)."""
        if script != "both":
            return list(self.scripts[script])
        names = sorted(self.scripts, key=lambda s: s != "gps")
        return list(dict.fromkeys(svc for name in names for svc in self.scripts[name]))
