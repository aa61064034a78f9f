"""Who may call which route of the sensor application: one role per route, in one table.

- `public`: anyone, no key.
- `device`: any valid key or JWT; a device's key only for its own device, named where
  `own` says: the path's `{device_id}`, the `device_id` query parameter (required for a
  device key), or each reading of the body (checked by the ingest handler itself).
- `admin`: the admin key (or a static key of `security.api_keys`, or a JWT with
  `role: admin`); a device key gets 403.

With `authentication: none` every caller is admin. No or bad credentials are 401,
a good key without the role 403 (counted as `sensor_data_errors_total{error_type=
"forbidden"}`), a device key over its rate 429. `guard` wraps a
handler in the check its table entry names; `docs/security.md` holds the table,
checked against `ROLES` by tests/apps/test_authorization.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from starlette.requests import Request
from starlette.responses import Response

from wireway.apps.sensor_ingest.auth import AuthError, Principal
from wireway.apps.sensor_ingest.metrics import ERRORS
from wireway.apps.sensor_ingest.responses import authenticate, err

if TYPE_CHECKING:
    from wireway.apps.sensor_ingest.app import SensorApp

Role = Literal["public", "device", "admin"]
Handler = Callable[[Request], Awaitable[Response]]
GATE = "wireway_gate"  # the attribute of a guarded endpoint holding its credential check


@dataclass(frozen=True)
class Rule:
    role: Role
    own: Literal["", "path", "query", "body"] = ""  # where a device key's device must appear


ADMIN = Rule("admin")
# (method, path) -> rule, for every route the application mounts
ROLES: dict[tuple[str, str], Rule] = {
    ("POST", "/api/v1/sensor-data"): Rule("device", "body"),
    ("POST", "/api/v1/sensor-data/batch"): Rule("device", "body"),
    ("GET", "/api/v1/queue/status"): ADMIN,
    ("GET", "/api/v1/devices"): ADMIN,
    ("POST", "/api/v1/devices/metadata"): ADMIN,
    ("GET", "/api/v1/devices/{device_id}"): Rule("device", "path"),
    ("DELETE", "/api/v1/devices/{device_id}"): ADMIN,
    ("GET", "/api/v1/occupancy"): ADMIN,
    ("GET", "/api/v1/alerts"): ADMIN,
    ("POST", "/api/v1/alerts/{alert_id}/{action}"): ADMIN,
    ("GET", "/api/v1/readings"): Rule("device", "query"),
    ("GET", "/api/v1/readings/export"): Rule("device", "query"),
}
NOTES = {
    "body": "a device key: its own device's readings only (403; in a batch, that entry fails)",
    "path": "a device key: its own device only",
    "query": "a device key: `device_id` must be its own",
}


def permitted(rule: Rule, principal: Principal, request: Request) -> Response | None:
    """None if `principal` may make this request under `rule`, else the 403."""
    if rule.role == "public" or principal.admin:
        return None
    if rule.role == "admin":
        ERRORS.labels("forbidden").inc()
        return err(403, {"error": "Admin key required"})
    own = principal.device_id
    if rule.own == "path":
        asked = request.path_params.get("device_id")
    elif rule.own == "query":
        asked = request.query_params.get("device_id")
    else:
        return None  # "body": the handler checks each reading
    if own is None or asked != own:
        ERRORS.labels("forbidden").inc()
        return err(403, {"error": "This key may only read its own device", "device_id": asked})
    return None


def gate(app: SensorApp) -> Callable[[Request], Principal]:
    """The application's credential check (raises AuthError), counted as refusals are."""

    def check(request: Request) -> Principal:
        return authenticate(app, request)

    return check


def guard(app: SensorApp, method: str, path: str, handler: Handler) -> Handler:
    """`handler` behind the check of its entry in ROLES (a route missing there is a bug)."""
    rule = ROLES[(method, path)]
    check = gate(app)

    async def guarded(request: Request) -> Response:
        if rule.role != "public":
            try:
                principal = check(request)
            except AuthError as exc:
                return err(exc.status, {"error": exc.message}, exc.retry_after)
            denied = permitted(rule, principal, request)
            if denied is not None:
                return denied
            request.state.principal = principal
        return await handler(request)

    setattr(guarded, GATE, check)
    return guarded
