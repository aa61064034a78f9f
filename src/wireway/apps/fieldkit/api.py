"""WigleToTAK's operators' API, its routes and answers unchanged, on the field kit's own port.

Bodies are JSON; an answer is `{"message": ...}` (200) or `{"error": ...}` (400, 404,
and 401 without the API key when one is set, or from another host when none is set,
403 for a folder outside the configured roots). Every change is kept in the data
folder before the answer goes out.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from wireway.apps.fieldkit.app import FieldKit
from wireway.apps.fieldkit.settings import SENSITIVITY_FACTORS, Settings


def answer(status: int, **body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=status)


async def body_of(request: Request) -> dict[str, Any]:
    """The JSON object sent, or {} (so a missing body gets WigleToTAK's "Missing ..." answer)."""
    try:
        data = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def argb(value: Any) -> int | None:
    """An ARGB colour as CoT writes it (a signed 32-bit integer), from an int or its text."""
    try:
        number = value if isinstance(value, int) and not isinstance(value, bool) else int(str(value), 0)
    except ValueError:
        return None
    number &= 0xFFFFFFFF
    return number - (1 << 32) if number >= 1 << 31 else number


def loopback(conn: HTTPConnection) -> bool:
    """Whether the client is on this host (what may change settings when no key is set)."""
    host = conn.client.host if conn.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def page() -> str:
    return (resources.files("wireway.apps.fieldkit") / "page" / "index.html").read_text("utf-8")


class Api:
    """The route handlers, over the service's settings."""

    def __init__(self, kit: FieldKit) -> None:
        self.kit = kit

    def refused(self, request: Request) -> Response | None:
        key = self.kit.options.api_key
        if not key:  # no key set: the settings are for this host only
            if loopback(request):
                return None
            return answer(401, error="Set FIELDKIT_API_KEY to use this API from another host")
        auth = request.headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        given = request.headers.get("x-api-key") or bearer
        if given and hmac.compare_digest(given.encode(), key.encode()):
            return None
        return answer(401, error="Missing or invalid API key")

    async def index(self, request: Request) -> Response:
        try:
            return HTMLResponse(page())
        except FileNotFoundError:  # a package built without its *.html files
            return answer(500, error="the operator page is missing from this installation")

    async def status(self, request: Request) -> Response:
        return JSONResponse(self.kit.status())

    async def tak_settings(self, request: Request) -> Response:
        data = await body_of(request)
        ip, port = data.get("tak_server_ip"), data.get("tak_server_port")
        if ip is None or port is None:
            return answer(400, error="Missing TAK Server IP or Port in the request")

        def apply(s: Settings) -> None:
            s.tak_server_ip, s.tak_server_port = str(ip).strip(), str(port).strip()

        await self.kit.change(apply)
        return answer(200, message="TAK settings updated successfully!")

    async def multicast(self, request: Request) -> Response:
        state = (await body_of(request)).get("takMulticast")
        if state is None:
            return answer(400, error="Missing TAK Multicast state in the request")
        await self.kit.change(lambda s: setattr(s, "multicast", truthy(state)))
        return answer(200, message="TAK Multicast state updated successfully!")

    async def analysis_mode(self, request: Request) -> Response:
        mode = (await body_of(request)).get("mode")
        if mode not in ("realtime", "postcollection"):
            return answer(400, error="Invalid analysis mode in the request")
        await self.kit.change(lambda s: setattr(s, "analysis_mode", mode))
        return answer(200, message="Analysis mode updated successfully!")

    async def antenna(self, request: Request) -> Response:
        data = await body_of(request)
        kind = data.get("antenna_sensitivity")
        if kind is None:
            return answer(400, error="Missing antenna sensitivity in the request")
        if kind not in SENSITIVITY_FACTORS:
            return answer(400, error="Invalid antenna sensitivity type")
        factor: float | None = None
        if kind == "custom" and "custom_factor" in data:
            try:
                factor = float(data["custom_factor"])
            except (TypeError, ValueError):
                return answer(400, error="Invalid custom sensitivity factor")
            if not factor > 0 or factor == float("inf"):
                return answer(400, error="Custom sensitivity factor must be positive")

        def apply(s: Settings) -> None:
            s.antenna_sensitivity = kind
            if factor is not None:
                s.custom_factor = factor

        await self.kit.change(apply)
        return answer(200, message="Antenna sensitivity updated successfully!")

    async def antenna_settings(self, request: Request) -> Response:
        s = self.kit.settings
        body = {
            "current_sensitivity": s.antenna_sensitivity,
            "available_types": list(SENSITIVITY_FACTORS),
            "custom_factor": s.custom_factor,
        }
        return answer(200, **body)

    async def list_files(self, request: Request) -> Response:
        directory = request.query_params.get("directory")
        if not directory:
            return answer(400, error="Directory parameter is missing")
        folder = self.kit.confined(directory)
        if folder is None:
            return answer(403, error="Directory is outside the allowed folders")
        try:
            names = [n for n in os.listdir(folder) if n.endswith(".wiglecsv")]
        except OSError:
            return answer(500, error="Error listing files in directory")
        return answer(200, files=sorted(names, reverse=True))

    async def start(self, request: Request) -> Response:
        data = await body_of(request)
        filename = data.get("filename")
        if not filename:
            return answer(400, error="Filename parameter is missing")
        folder = self.kit.confined(str(data.get("directory") or self.kit.options.wigle_dir))
        name = str(filename)
        if folder is None or Path(name).name != name or name in (".", ".."):
            return answer(403, error="Directory is outside the allowed folders")
        path = folder / name
        if self.kit.confined(str(path)) is None:  # a symbolic link out of the roots
            return answer(403, error="Directory is outside the allowed folders")
        if not path.is_file():
            return answer(404, error="File does not exist")

        def apply(s: Settings) -> None:
            s.broadcasting, s.directory, s.filename = True, str(folder), name

        await self.kit.change(apply)
        if self.kit.settings.analysis_mode == "postcollection" and self.kit.replay is not None:
            await self.kit.replay(path)
        return answer(200, message="Broadcast started for file: " + name)

    async def stop(self, request: Request) -> Response:
        await self.kit.change(lambda s: setattr(s, "broadcasting", False))
        if self.kit.stop_replay is not None:
            await self.kit.stop_replay()
        return answer(200, message="Broadcast stopped successfully")

    async def whitelist_add(self, request: Request) -> Response:
        data = await body_of(request)
        ssid, mac = data.get("ssid"), data.get("mac")
        if ssid:
            await self.kit.change(lambda s: s.whitelisted_ssids.add(str(ssid)))
            return answer(200, message=f"SSID {ssid} added to whitelist")
        if mac:
            await self.kit.change(lambda s: s.whitelisted_macs.add(str(mac).upper()))
            return answer(200, message=f"MAC address {mac} added to whitelist")
        return answer(400, error="Missing SSID or MAC address in request")

    async def whitelist_remove(self, request: Request) -> Response:
        data = await body_of(request)
        ssid, mac = data.get("ssid"), data.get("mac")
        s = self.kit.settings
        if ssid:
            if str(ssid) not in s.whitelisted_ssids:
                return answer(404, error=f"SSID {ssid} not found in whitelist")
            await self.kit.change(lambda s: s.whitelisted_ssids.discard(str(ssid)))
            return answer(200, message=f"SSID {ssid} removed from whitelist")
        if mac:
            if str(mac).upper() not in s.whitelisted_macs:
                return answer(404, error=f"MAC address {mac} not found in whitelist")
            await self.kit.change(lambda s: s.whitelisted_macs.discard(str(mac).upper()))
            return answer(200, message=f"MAC address {mac} removed from whitelist")
        return answer(400, error="Missing SSID or MAC address in request")

    async def blacklist_add(self, request: Request) -> Response:
        data = await body_of(request)
        ssid, mac, value = data.get("ssid"), data.get("mac"), data.get("argb_value")
        if not ((ssid or mac) and value):
            return answer(400, error="Missing SSID or MAC address or ARBG value in request")
        color = argb(value)
        if color is None:
            return answer(400, error="Invalid ARGB value in request")
        if ssid:
            await self.kit.change(lambda s: s.blacklisted_ssids.__setitem__(str(ssid), color))
            return answer(200, message=f"SSID {ssid} with ARBG value {value} added to blacklist")
        await self.kit.change(lambda s: s.blacklisted_macs.__setitem__(str(mac).upper(), color))
        return answer(200, message=f"MAC address {mac} with ARBG value {value} added to blacklist")

    async def blacklist_remove(self, request: Request) -> Response:
        data = await body_of(request)
        ssid, mac = data.get("ssid"), data.get("mac")
        s = self.kit.settings
        if ssid:
            if str(ssid) not in s.blacklisted_ssids:
                return answer(404, error=f"SSID {ssid} not found in blacklist")
            await self.kit.change(lambda s: s.blacklisted_ssids.pop(str(ssid), None))
            return answer(200, message=f"SSID {ssid} removed from blacklist")
        if mac:
            if str(mac).upper() not in s.blacklisted_macs:
                return answer(404, error=f"MAC address {mac} not found in blacklist")
            await self.kit.change(lambda s: s.blacklisted_macs.pop(str(mac).upper(), None))
            return answer(200, message=f"MAC address {mac} removed from blacklist")
        return answer(400, error="Missing SSID or MAC address in request")


# (method, path) -> role: "admin" needs the kit's key when one is set (FIELDKIT_API_KEY);
# the field kit has no device keys. docs/security.md lists this table.
API_ROLES: dict[tuple[str, str], str] = {
    ("GET", "/"): "public",
    ("GET", "/status"): "admin",
    ("POST", "/update_tak_settings"): "admin",
    ("POST", "/update_multicast_state"): "admin",
    ("POST", "/update_analysis_mode"): "admin",
    ("POST", "/update_antenna_sensitivity"): "admin",
    ("GET", "/get_antenna_settings"): "admin",
    ("GET", "/list_wigle_files"): "admin",
    ("POST", "/start_broadcast"): "admin",
    ("POST", "/stop_broadcast"): "admin",
    ("POST", "/add_to_whitelist"): "admin",
    ("POST", "/remove_from_whitelist"): "admin",
    ("POST", "/add_to_blacklist"): "admin",
    ("POST", "/remove_from_blacklist"): "admin",
}


def api_app(kit: FieldKit) -> Starlette:
    """The ASGI app of the operators' port: the page at `/`, `/status`, WigleToTAK's routes."""
    api = Api(kit)
    handlers = {
        "/": api.index,
        "/status": api.status,
        "/update_tak_settings": api.tak_settings,
        "/update_multicast_state": api.multicast,
        "/update_analysis_mode": api.analysis_mode,
        "/update_antenna_sensitivity": api.antenna,
        "/get_antenna_settings": api.antenna_settings,
        "/list_wigle_files": api.list_files,
        "/start_broadcast": api.start,
        "/stop_broadcast": api.stop,
        "/add_to_whitelist": api.whitelist_add,
        "/remove_from_whitelist": api.whitelist_remove,
        "/add_to_blacklist": api.blacklist_add,
        "/remove_from_blacklist": api.blacklist_remove,
    }

    def checked(role: str, handler: Any) -> Any:
        if role == "public":
            return handler

        async def run(request: Request) -> Response:
            return api.refused(request) or await handler(request)

        return run

    return Starlette(
        routes=[
            Route(path, checked(role, handlers[path]), methods=[method])
            for (method, path), role in API_ROLES.items()
        ]
    )
