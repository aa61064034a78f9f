"""The `http` input: POST routes on the shared HTTP server."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wireway.apispec.engine_routes import http_input_doc
from wireway.apispec.openapi import document
from wireway.connectors.base import Input, InputContext, Rejected
from wireway.connectors.bodies import Refused, decode_json, decode_lines, read_body
from wireway.connectors.http.config import HttpInputConfig
from wireway.errors import BackpressureError
from wireway.observability import logging as log
from wireway.observability.metrics import MESSAGES
from wireway.registry import register_input

logger = log.get("http")
JSON_TYPES = ("application/json", "text/json")
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def given_id(value: Any) -> str | None:
    """The messageId the sender gave with a value (an envelope's), else None."""
    if isinstance(value, dict):
        message_id = value.get("messageId")
        if isinstance(message_id, str) and message_id:
            return message_id
    return None


def log_refused(values: list[Any], rejected: list[Rejected], source: str) -> None:
    """Log at INFO the messageId of each refused value whose sender gave one (an id
    the input made up would name nothing the sender knows)."""
    if not logger.is_enabled_for(logging.INFO):
        return
    for refused in rejected:
        if 0 <= refused.index < len(values) and (message_id := given_id(values[refused.index])):
            logger.info("message refused", input=source, message_id=message_id, errors=len(refused.reasons))


@register_input("http", config=HttpInputConfig)
class HttpInput(Input):
    """Accept JSON, JSON arrays and JSON lines POSTed to a path (or any other format's body)."""

    formats = None  # json and jsonl by content type; another format reads any body

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        self.json = self.iface.format in ("json", "jsonl")
        sec = self.pattern.security
        self.keys = [k.encode() for k in sec.api_keys if k]
        self.auth = sec.authentication == "api_key"
        # requests refused whole, before any message was made of them (the pattern
        # counts the values it refuses itself, as `rejected`)
        self.refused = MESSAGES.labels(self.pattern.name, self.name, "refused")
        route = Route(self.config.address, self.handle, methods=["POST"])
        header = sec.header if self.auth else None
        doc = http_input_doc(self.config.address, self.pattern.name, header, self.config.max_items)
        ctx.add_routes([document(route, doc)])
        self.state = "running"

    def authorized(self, request: Request) -> bool:
        if not self.auth:
            return True
        sec = self.pattern.security
        given = request.headers.get(sec.header, "")
        auth = request.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        raw = given.encode()
        return any(hmac.compare_digest(raw, key) for key in self.keys)

    async def handle(self, request: Request) -> Response:
        if self.state != "running":
            return error(503, "input is stopping", retry_after=1)
        if not self.authorized(request):
            self.refused.inc()
            return error(401, "missing or invalid credentials")
        if self.ctx.full():  # refused before the body is decoded (see InputContext)
            return error(503, "buffer full", retry_after=1)
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if self.json and ctype not in JSON_TYPES + NDJSON_TYPES:
            self.refused.inc()
            return error(415, f"unsupported content type {ctype}; send application/json")
        try:
            body = await read_body(request, self.pattern.security.max_body_bytes)
            if self.json:
                values, problems = self.parse(body, ctype in NDJSON_TYPES)
            else:
                values, problems = self.parse_format(body)
        except Refused as exc:
            self.refused.inc()
            return error(exc.status, exc.message)
        if problems:
            self.refused.inc()
            return error(400, "invalid input", rejected=problems)
        if not values:
            self.refused.inc()
            return error(400, "empty body")
        if len(values) > self.config.max_items:
            self.refused.inc()
            return error(413, f"more than {self.config.max_items} messages in one request")
        try:
            result = await self.ctx.ingest(values, source=self.name, reject_invalid=True, wait=False)
        except BackpressureError as exc:
            return error(503, str(exc), retry_after=max(1, round(exc.retry_after)))
        if result.rejected:
            log_refused(values, result.rejected, self.name)
            rejected = [{"index": r.index, "reasons": r.reasons} for r in result.rejected]
            return error(400, "invalid input", rejected=rejected)
        ids = [m.message_id for m in result.accepted]
        return JSONResponse({"accepted": len(ids), "ids": ids}, status_code=202)

    def parse_format(self, body: bytes) -> tuple[list[Any], list[dict[str, Any]]]:
        """The records of a body in the entry's format (a new codec per request: a body
        is a whole unit, a csv one with its own header row)."""
        values, problems = [], []
        for n, record in enumerate(self.iface.new_codec().decode(body)):
            if record.error is not None:
                problems.append({"index": n, "reasons": [record.error]})
            else:
                values.append(record.value)
        return values, problems

    @staticmethod
    def parse(body: bytes, lines: bool) -> tuple[list[Any], list[dict[str, Any]]]:
        if lines:
            values, problems = [], []
            for n, value, err in decode_lines(body):
                if err:
                    problems.append({"line": n, "reasons": [err]})
                else:
                    values.append(value)
            return values, problems
        try:
            value = decode_json(body)
        except Refused as exc:
            return [], [{"index": 0, "reasons": [exc.message]}]
        return (value if isinstance(value, list) else [value]), []
