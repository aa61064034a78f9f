"""Authorization by role on every route: the walk over /openapi.json of a running,
auth-enabled sensor instance (with a service, so the services routes are mounted),
with no key, a device key and the admin key; and the table of docs/security.md
checked against the declarations it is made from."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sensor_support import ADMIN, client, metric, reading, sensor_engine, sensor_service

from conftest import wireway
from wireway.apps.fieldkit.api import API_ROLES, api_app
from wireway.apps.fieldkit.control.api import CONTROL_ROLES, control_app
from wireway.apps.sensor_ingest.access import NOTES, ROLES
from wireway.runtime.engine import Engine
from wireway.runtime.services.routes import SERVICE_ROLES

ROOT = Path(__file__).resolve().parents[2]
for folder in ("fieldkit", "fieldkit/control"):  # the field kit tests' helpers
    sys.path.insert(0, str(Path(__file__).parent / folder))
KIT_KEY = "kit-admin-key-for-the-walk"
OWN = "esp32-own"
OTHER = "esp32-other"
# the engine's own routes (web/app.py): open by design, bound to 127.0.0.1 by default
ENGINE_ROLES = {
    ("GET", "/health"): "public",
    ("GET", "/ready"): "public",
    ("GET", "/status"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/openapi.json"): "public",
}
SERVICE = """
services:
  sleeper:
    command: [sleep, "600"]
"""


def with_service_and_room(text: str) -> str:
    """The built-in pattern with a service (its routes mounted) and a rate limit the walk
    stays under (429 is tested elsewhere)."""
    text = text.replace(
        "rate_limit: {per_minute: 100, burst: 20}", "rate_limit: {per_minute: 6000, burst: 1000}"
    )
    return text + SERVICE


def expected_roles() -> dict[tuple[str, str], str]:
    return {**ENGINE_ROLES, **{k: r.role for k, r in ROLES.items()}, **SERVICE_ROLES}


@pytest.fixture
async def instance(tmp_path: Path) -> AsyncIterator[tuple[Engine, str]]:
    async with sensor_engine(tmp_path, edit=with_service_and_room) as engine:
        app = sensor_service(engine)
        assert app.keys is not None
        _, device_key = await app.keys.create(OWN)
        await app.keys.refresh()
        async with client(engine) as admin:  # the devices the routes name exist
            for device in (OWN, OTHER):
                r = await admin.post("/api/v1/devices/metadata", json={"device_id": device, "metadata": {}})
                assert r.status_code == 200, r.text
        yield engine, device_key


def fill(path: str, device: str) -> str:
    values = {"device_id": device, "alert_id": "no-such-alert", "action": "ack", "name": "sleeper"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


async def call(c: httpx.AsyncClient, method: str, path: str, device: str) -> httpx.Response:
    url = fill(path, device)
    params = {"device_id": device} if path.startswith("/api/v1/readings") else None
    if method == "GET":
        return await c.get(url, params=params)
    if method == "DELETE":
        return await c.delete(url)
    body: Any = {}
    if path == "/api/v1/sensor-data":
        body = reading(device, "2025-10-16T18:00:00Z")
    elif path == "/api/v1/sensor-data/batch":
        body = [reading(device, "2025-10-16T18:00:01Z")]
    elif path == "/api/v1/devices/metadata":
        body = {"device_id": device, "metadata": {}}
    return await c.post(url, json=body, params={"force": "true"} if path.endswith("/stop") else None)


def refused(r: httpx.Response) -> bool:
    return r.status_code in (401, 403)


async def test_every_route_by_role(instance: tuple[Engine, str]) -> None:
    """Each route of /openapi.json has a role; no key is 401 (public routes: answered),
    a device key 403 on admin routes and on another device, the admin key never refused."""
    engine, device_key = instance
    async with client(engine, None) as anon, client(engine, device_key) as dev, client(engine) as admin:
        doc = (await anon.get("/openapi.json")).json()
        served = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
        roles = expected_roles()
        assert served == set(roles), "routes without a role, or roles of routes not served"
        for (method, path), role in roles.items():  # the document says each route's role
            if (method, path) not in ENGINE_ROLES:
                assert f"Role: {role}:" in doc["paths"][path][method.lower()]["description"], (method, path)
        # services last: a stop would end the sleeper the other calls name
        order = sorted(served, key=lambda k: (k[1].startswith("/services"), k[1].endswith("/stop"), k))
        for method, path in order:
            role = roles[(method, path)]
            what = f"{method} {path} ({role})"
            none = await call(anon, method, path, OWN)
            if role == "public":
                assert not refused(none), what
            else:
                assert none.status_code == 401, (what, none.status_code, none.text)
            mine = await call(dev, method, path, OWN)
            if role == "admin":
                assert mine.status_code == 403, (what, mine.status_code, mine.text)
                if method == "GET":  # HEAD reaches the same handler, behind the same guard
                    assert (await dev.head(fill(path, OWN))).status_code == 403, what
            else:
                assert not refused(mine), (what, mine.status_code, mine.text)
            if role == "device":
                other = await call(dev, method, path, OTHER)
                if path.startswith("/api/v1/sensor-data/batch"):  # answered per reading
                    assert other.json()["results"][0]["status"] == "failed", what
                else:
                    assert other.status_code == 403, (what, other.status_code, other.text)
            allowed = await call(admin, method, path, OWN)
            assert not refused(allowed), (what, allowed.status_code, allowed.text)


async def test_a_device_key_cannot_change_alerts(instance: tuple[Engine, str]) -> None:
    """The reported defect: a device key acknowledged alerts. A real open alert (gas over
    the threshold) stays open after the device key's ack and clear; the admin's ack works."""
    engine, device_key = instance
    async with client(engine, device_key) as dev, client(engine) as admin:
        gas = reading(OWN, "2025-10-16T18:05:00Z", mq134={"gas_concentration": 900, "unit": "ppm"})
        assert (await dev.post("/api/v1/sensor-data", json=gas)).status_code == 202
        alerts: list[dict[str, Any]] = []
        for _ in range(200):
            alerts = (await admin.get("/api/v1/alerts", params={"device_id": OWN})).json()["alerts"]
            if alerts:
                break
            await asyncio.sleep(0.05)
        assert alerts, "no alert raised"
        alert_id = alerts[0]["id"]
        forbidden = 'sensor_data_errors_total{error_type="forbidden"}'
        before = metric((await admin.get("/metrics")).text, forbidden)
        for action in ("ack", "clear"):
            r = await dev.post(f"/api/v1/alerts/{alert_id}/{action}")
            assert r.status_code == 403, r.text
            assert r.json() == {"error": "Admin key required"}
        assert (await dev.get("/api/v1/alerts")).status_code == 403
        assert metric((await admin.get("/metrics")).text, forbidden) == before + 3
        state = (await admin.get("/api/v1/alerts", params={"device_id": OWN})).json()["alerts"][0]["state"]
        assert state == "open"
        acked = await admin.post(f"/api/v1/alerts/{alert_id}/ack")
        assert acked.status_code == 200
        assert acked.json()["state"] == "acknowledged"


async def test_wireway_services_sends_the_admin_key(instance: tuple[Engine, str]) -> None:
    """`wireway services list` passes with WIREWAY_ADMIN_KEY, not with a device key there."""
    engine, device_key = instance
    host, port = engine.http
    args = ("services", "list", "--http", f"{host}:{port}")
    ok = await asyncio.to_thread(wireway, *args, env={"WIREWAY_ADMIN_KEY": ADMIN, "COLUMNS": "200"})
    assert ok.returncode == 0, ok.stderr
    assert "sleeper" in ok.stdout
    refused = await asyncio.to_thread(wireway, *args, env={"WIREWAY_ADMIN_KEY": device_key})
    assert refused.returncode == 1
    assert "FORBIDDEN" in refused.stdout + refused.stderr


async def test_a_device_reads_only_its_own_readings(instance: tuple[Engine, str]) -> None:
    engine, device_key = instance
    async with client(engine, device_key) as dev:
        assert (await dev.get("/api/v1/readings")).status_code == 403  # no device_id: all devices
        assert (await dev.get("/api/v1/readings", params={"device_id": OTHER})).status_code == 403
        assert (await dev.get("/api/v1/readings", params={"device_id": OWN})).status_code == 200
        assert (await dev.get(f"/api/v1/devices/{OTHER}")).status_code == 403
        assert (await dev.get(f"/api/v1/devices/{OWN}")).status_code == 200
        spoof = await dev.post("/api/v1/sensor-data", json=reading(OTHER, "2025-10-16T18:06:00Z"))
        assert spoof.status_code == 403


def served_by(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route of a Starlette app (a WebSocket route as WEBSOCKET)."""
    methods = lambda r: (getattr(r, "methods", None) or {"WEBSOCKET"}) - {"HEAD"}  # noqa: E731
    return {(m, r.path) for r in app.routes for m in methods(r)}


async def walk_kit(base: httpx.AsyncClient, table: dict[tuple[str, str], str]) -> None:
    """Every HTTP route of a field kit table with no key, a wrong key and the kit's key."""
    for (method, path), role in table.items():
        if method == "WEBSOCKET":
            continue
        for key, refused_with in ((None, 401), ("wrong-key", 401), (KIT_KEY, None)):
            headers = {"X-API-Key": key} if key else {}
            r = await base.request(method, path, headers=headers, json={} if method == "POST" else None)
            what = (method, path, role, key, r.status_code, r.text[:200])
            if role == "public" or refused_with is None:
                assert not refused(r), what
            else:
                assert r.status_code == refused_with, what


async def test_the_field_kit_routes_by_role(tmp_path: Path) -> None:
    """The operators' API and the control API, with a kit key set: every route but the
    page needs it; the control WebSocket too."""
    import websockets
    from control_support import control
    from kit_support import fieldkit

    for sub in ("kit", "control"):
        (tmp_path / sub).mkdir()
    async with fieldkit(tmp_path / "kit", FIELDKIT_API_KEY=KIT_KEY) as kit, kit.client() as c:
        service = next(iter(kit.engine.app_services.values()))
        assert served_by(api_app(service)) == set(API_ROLES)  # type: ignore[arg-type]
        await walk_kit(c, API_ROLES)
    async with control(tmp_path / "control", api_key=KIT_KEY) as ctl, ctl.client() as c:
        assert served_by(control_app(ctl.kit)) == set(CONTROL_ROLES)
        await walk_kit(c, CONTROL_ROLES)
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(ctl.ws_url):
                pass


async def test_without_a_kit_key_only_this_host_may_change_settings(tmp_path: Path) -> None:
    """No key set: the field kit's admin routes answer a client on the loopback only;
    another host gets 401 telling it to set the key (the page itself stays open)."""
    from control_support import control
    from kit_support import fieldkit

    for sub in ("kit", "control"):
        (tmp_path / sub).mkdir()
    remote, local = ("192.0.2.7", 5000), ("127.0.0.1", 5000)
    async with fieldkit(tmp_path / "kit") as kit, control(tmp_path / "control") as ctl:
        service = next(iter(kit.engine.app_services.values()))
        for app, table in ((api_app(service), API_ROLES), (control_app(ctl.kit), CONTROL_ROLES)):  # type: ignore[arg-type]
            for client_address, allowed in ((remote, False), (local, True)):
                transport = httpx.ASGITransport(app=app, client=client_address, raise_app_exceptions=False)
                async with httpx.AsyncClient(transport=transport, base_url="http://kit") as c:
                    for (method, path), role in table.items():
                        if method == "WEBSOCKET":
                            continue
                        r = await c.request(method, path, json={} if method == "POST" else None)
                        what = (client_address, method, path, r.status_code, r.text[:200])
                        if role == "public" or allowed:
                            assert not refused(r), what
                        else:
                            assert r.status_code == 401, what
                            assert "from another host" in r.text, what


class NoServices:
    """A supervisor with no services (the routes' checks come first)."""

    def status(self, name: str | None = None) -> list[Any]:
        return []


@pytest.mark.parametrize(
    ("env_key", "client_host", "sent", "status"),
    [
        ("", "127.0.0.1", None, 200),  # no admin key anywhere: the loopback is the guard
        ("", "192.0.2.7", None, 403),
        ("the-admin-key", "127.0.0.1", None, 401),
        ("the-admin-key", "127.0.0.1", "the-admin-kez", 401),
        ("the-admin-key", "127.0.0.1", "the-admin-key", 200),
        ("the-admin-key", "192.0.2.7", "the-admin-key", 403),
    ],
)
async def test_services_routes_without_an_application_use_wireway_admin_key(
    monkeypatch: pytest.MonkeyPatch, env_key: str, client_host: str, sent: str | None, status: int
) -> None:
    """A deployment of services only (no application that keeps keys): the services
    routes need WIREWAY_ADMIN_KEY when it is set, and a client on this host always."""
    from starlette.applications import Starlette

    from wireway.runtime.services.routes import service_routes

    monkeypatch.setenv("WIREWAY_ADMIN_KEY", env_key)
    app = Starlette(routes=service_routes(NoServices()))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, client=(client_host, 5000))
    headers = {"X-API-Key": sent} if sent else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://w", headers=headers) as c:
        assert (await c.get("/services")).status_code == status


def test_the_table_in_docs_security_md_is_the_declared_one() -> None:
    """docs/security.md's route x role table is what the declarations say, row for row."""
    text = (ROOT / "docs" / "security.md").read_text()
    start, end = "<!-- roles:start -->", "<!-- roles:end -->"
    assert start in text
    assert end in text
    table = text.split(start, 1)[1].split(end, 1)[0].strip()
    assert table == roles_markdown(), "docs/security.md's table differs; paste roles_markdown()"


def roles_markdown() -> str:
    """The table docs/security.md holds, built from the declarations."""
    rows = [
        "| port | method | path | no key | device key | admin key | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    answer = {
        "public": ("yes", "yes", "yes"),
        "device": ("401", "yes", "yes"),
        "admin": ("401", "403", "yes"),
        "kit": ("401", "401", "yes"),  # the field kit's one key; it has no device keys
    }
    notes = {k: NOTES[r.own] for k, r in ROLES.items() if r.own}
    main = list(ENGINE_ROLES.items())
    main += [(k, r.role) for k, r in ROLES.items()] + list(SERVICE_ROLES.items())
    for (method, path), role in main:
        note = notes.get((method, path), "loopback only" if path.startswith("/services") else "")
        rows.append(f"| main | {method} | `{path}` | {' | '.join(answer[role])} | {note} |")
    for port, table in (("field kit", API_ROLES), ("kit control", CONTROL_ROLES)):
        for (method, path), role in table.items():
            cells = answer["public" if role == "public" else "kit"]
            note = "" if role == "public" else "admin key: the kit's key; none set: this host only"
            rows.append(f"| {port} | {method} | `{path}` | {' | '.join(cells)} | {note} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(roles_markdown())
