"""The sensor application's read and admin API: queue status, devices, occupancy,
alerts, readings."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from wireway.apps.sensor_ingest.access import guard
from wireway.apps.sensor_ingest.migrations import tables
from wireway.apps.sensor_ingest.occupancy import location_of
from wireway.apps.sensor_ingest.responses import err
from wireway.connectors.bodies import Refused, decode_json, read_body
from wireway.envelope import now_rfc3339

METADATA_LIMIT = 64 * 1024  # a device's metadata document: far above any real one

if TYPE_CHECKING:
    from wireway.apps.sensor_ingest.app import SensorApp

DAILY_DAYS = 30  # days of occupied seconds in GET /api/v1/devices/{id}


def api_routes(app: SensorApp) -> list[BaseRoute]:
    """Every GET/DELETE/admin route of the application, each behind its role (access.ROLES)."""

    async def queue_status(request: Request) -> Response:
        queue, dlq = app.view.queue_depth(), app.view.dlq_depth()
        return JSONResponse({"queue_size": queue, "dlq_size": dlq, "timestamp": now_rfc3339()})

    def device_view(row: dict[str, Any]) -> dict[str, Any]:
        view = dict(row)
        if app.occupancy is not None:
            view["occupancy"] = app.occupancy.snapshot(row["device_id"])
        return view

    async def list_devices(request: Request) -> Response:
        assert app.devices is not None
        rows = [device_view(r) for r in await app.devices.all()]
        return JSONResponse({"devices": rows, "count": len(rows)})

    async def daily(device_id: str) -> list[dict[str, Any]]:
        """Occupied seconds per UTC day, the last DAILY_DAYS days, most recent first: the
        stored totals, or the running ones where they are ahead (not saved yet)."""
        assert app.db is not None
        now = app.occupancy.clock() if app.occupancy is not None else time.time()
        today = datetime.fromtimestamp(now, UTC).date()
        oldest = (today - timedelta(days=DAILY_DAYS - 1)).isoformat()
        rows = await app.db.fetch(
            f"SELECT day, occupied_seconds FROM {tables(app.db).occupancy_daily} WHERE device_id = $1 "
            f"ORDER BY day DESC LIMIT {DAILY_DAYS}",
            device_id,
        )
        days = {str(r["day"])[:10]: float(r["occupied_seconds"]) for r in rows}
        if app.occupancy is not None:
            for day, seconds in app.occupancy.days(device_id).items():
                days[day] = max(days.get(day, 0.0), seconds)
        return [
            {"day": day, "occupied_seconds": round(days[day], 3)}
            for day in sorted(days, reverse=True)
            if day >= oldest
        ]

    async def get_device(request: Request) -> Response:
        assert app.devices is not None
        device_id = request.path_params["device_id"]
        row = await app.devices.get(device_id)
        if row is None:
            return err(404, {"error": "Device not found", "device_id": device_id})
        view = device_view(row)
        if "occupancy" in view:
            view["occupancy"]["daily"] = await daily(device_id)
        return JSONResponse(view)

    async def occupancy(request: Request) -> Response:
        """Occupied devices and devices per location (registered devices that have not
        reported since the start count as vacant, at their metadata's location)."""
        registered = (
            {d: location_of(m) for d, m in app.devices.metadata.items()} if app.devices is not None else {}
        )
        if app.occupancy is not None:
            counts = app.occupancy.locations(registered)
        else:
            counts = {}
            for location in registered.values():
                counts[location] = (0, counts.get(location, (0, 0))[1] + 1)
        locations = [
            {"location": location, "occupied": occupied, "devices": devices}
            for location, (occupied, devices) in sorted(counts.items())
        ]
        return JSONResponse({"locations": locations, "timestamp": now_rfc3339()})

    async def delete_device(request: Request) -> Response:
        assert app.devices is not None
        device_id = request.path_params["device_id"]
        if not await app.devices.delete(device_id):
            return err(404, {"error": "Device not found", "device_id": device_id})
        return JSONResponse({"message": "Device deleted", "device_id": device_id})

    async def upsert_metadata(request: Request) -> Response:
        assert app.devices is not None
        try:
            body = decode_json(await read_body(request, METADATA_LIMIT))
        except Refused as exc:
            return err(
                exc.status,
                {"error": "Invalid JSON" if exc.status == 400 else exc.message, "details": [exc.message]},
            )
        device_id = body.get("device_id") if isinstance(body, dict) else None
        metadata = body.get("metadata") if isinstance(body, dict) else None
        if not isinstance(device_id, str) or not device_id or not isinstance(metadata, dict):
            return err(
                400,
                {
                    "error": "Invalid device metadata",
                    "details": ["device_id (string) and metadata (object) are required"],
                },
            )
        await app.devices.upsert_metadata(device_id, metadata)
        await app.move_device(device_id, metadata)
        return JSONResponse(
            {"message": "Device metadata updated", "device_id": device_id, "metadata": metadata}
        )

    async def list_alerts(request: Request) -> Response:
        if app.alerts is None:
            return JSONResponse({"alerts": [], "count": 0})
        rows = app.alerts.list(request.query_params.get("state"), request.query_params.get("device_id"))
        return JSONResponse({"alerts": rows, "count": len(rows)})

    async def change_alert(request: Request) -> Response:
        alert_id, action = request.path_params["alert_id"], request.path_params["action"]
        if app.alerts is None or action not in ("ack", "clear"):
            return err(404, {"error": "Not found", "path": request.url.path})
        alert = await app.change_alert(alert_id, action)
        if alert is None:
            return err(404, {"error": "Alert not found", "id": alert_id})
        return JSONResponse(alert)

    from wireway.apps.sensor_ingest.readings_api import readings_routes

    def db() -> Any:
        return app.db

    handlers: list[tuple[str, str, Any]] = [
        ("GET", "/api/v1/queue/status", queue_status),
        ("GET", "/api/v1/devices", list_devices),
        ("POST", "/api/v1/devices/metadata", upsert_metadata),
        ("GET", "/api/v1/devices/{device_id}", get_device),
        ("DELETE", "/api/v1/devices/{device_id}", delete_device),
        ("GET", "/api/v1/occupancy", occupancy),
        ("GET", "/api/v1/alerts", list_alerts),
        ("POST", "/api/v1/alerts/{alert_id}/{action}", change_alert),
    ]
    routes: list[BaseRoute] = [
        Route(path, guard(app, method, path, handler), methods=[method]) for method, path, handler in handlers
    ]

    async def checked_by_guard(request: Request) -> None:
        return None  # the readings routes are wrapped in their guard below

    for route in readings_routes(db, checked_by_guard):
        assert isinstance(route, Route)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            routes.append(Route(route.path, guard(app, method, route.path, route.endpoint), methods=[method]))
    return routes
