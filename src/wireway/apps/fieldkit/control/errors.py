"""Every error of the control API in its one shape (`{"success": false, "error",
"message", "details", "timestamp"}`), also an unknown path (404 NOT_FOUND), a method
a route does not take (405 METHOD_NOT_ALLOWED) and a fault (500 INTERNAL_ERROR)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from wireway.apps.fieldkit.control.scripts import ControlError, now_iso
from wireway.observability import logging as log

logger = log.get("fieldkit-control")


def failure(error: ControlError) -> JSONResponse:
    body = {
        "success": False,
        "error": error.code,
        "message": error.message,
        "details": error.details,
        "timestamp": now_iso(),
    }
    return JSONResponse(body, status_code=error.status)


CODES = {404: ("NOT_FOUND", "Route not found"), 405: ("METHOD_NOT_ALLOWED", "Method not allowed")}


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code, message = CODES.get(status, ("HTTP_ERROR", "Request failed"))
    return failure(ControlError(status, code, message, f"{request.method} {request.url.path}"))


async def fault(request: Request, exc: Exception) -> Response:
    logger.error("control API fault", path=request.url.path, error=repr(exc))
    return failure(ControlError(500, "INTERNAL_ERROR", "Internal server error", None))


def shaped(app: ASGIApp) -> ASGIApp:
    """`app` answering its errors in the API's shape (a Starlette app; others unchanged)."""
    if isinstance(app, Starlette):
        app.add_exception_handler(HTTPException, http_error)
        app.add_exception_handler(Exception, fault)
    return app
