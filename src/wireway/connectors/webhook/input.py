"""The `webhook` input: signed POSTs on the shared HTTP server, checked before anything
is kept, a redelivery recognised by its delivery id."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wireway.apispec.engine_routes import Accepted, Problem, Refused
from wireway.apispec.openapi import Body, Param, RouteDoc, document
from wireway.connectors.base import Input, InputContext
from wireway.connectors.bodies import Refused as BodyRefused
from wireway.connectors.bodies import read_body
from wireway.connectors.signing import fresh, secrets_of, verify
from wireway.connectors.webhook.config import WebhookInputConfig
from wireway.connectors.webhook.deliveries import Deliveries, file_for
from wireway.envelope import Message, is_envelope, new_message_id, stable_id
from wireway.errors import BackpressureError, WirewayError
from wireway.observability import logging as log
from wireway.observability.metrics import MESSAGES
from wireway.registry import register_input

logger = log.get("webhook")
GITHUB_EVENT = "X-GitHub-Event"
EVENT_TYPE = re.compile(r"[a-z][a-z0-9._-]{0,63}")
MAX_ID = 200  # characters of a delivery id; a longer one is refused


class Duplicate(msgspec.Struct, forbid_unknown_fields=True):
    """A delivery id accepted before: nothing kept again; `ids` are the messages it made."""

    accepted: int
    ids: list[str]
    duplicate: bool


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def route_doc(config: WebhookInputConfig, pattern: str) -> RouteDoc:
    """The OpenAPI description of a webhook route."""
    headers = [Param(config.signature(), "header", "HMAC-SHA256 signature, sha256=<hex>", required=True)]
    if config.style == "generic":
        headers.append(Param(config.timestamp_header, "header", "Unix time of sending", required=True))
    if config.delivery():
        headers.append(Param(config.delivery() or "", "header", "delivery id (deduplicates)"))
    return RouteDoc(
        f"Signed webhooks into pattern {pattern}",
        method="POST",
        path=config.address,
        description=f"A body signed with HMAC-SHA256 ({config.style} style); answered once kept.",
        request=(Body(None, description="the webhook's body, in the entry's format"),),
        responses={
            200: Body(Duplicate, description="a delivery accepted before; nothing kept again"),
            202: Body(Accepted, description="kept; delivered from the outboxes"),
            400: Body(Refused, description="the body does not decode or was refused; nothing kept"),
            401: Body(Problem, description="missing or wrong signature, or a stale timestamp"),
            413: Body(Problem, description="body over the limit"),
            503: Body(Problem, description="buffer full or stopping; retry after Retry-After"),
        },
        parameters=headers,
        tags=(pattern,),
    )


@register_input("webhook", config=WebhookInputConfig)
class WebhookInput(Input):
    """Accept webhooks whose HMAC-SHA256 signature checks out (GitHub's or a generic form)."""

    formats = None
    config: WebhookInputConfig
    deliveries: Deliveries | None = None

    async def start(self, ctx: InputContext) -> None:
        self.ctx = ctx
        config = self.config
        self.secrets = secrets_of(config.secrets(), config.secret_file, self.pattern.base_dir)
        if not self.secrets:
            raise WirewayError(f"{self.name}: no secret to check signatures with ({config.secret_file})")
        self.signature_header = config.signature()
        self.id_header = config.delivery()
        if self.id_header:
            self.deliveries = Deliveries(file_for(self.data_dir, self.name), config.remember)
            await self.deliveries.open()
        self.busy = 0  # requests being answered: stop waits for them before closing the file
        self.refused = MESSAGES.labels(self.pattern.name, self.name, "unauthorized")
        self.duplicates = MESSAGES.labels(self.pattern.name, self.name, "duplicate")
        route = Route(config.address, self.handle, methods=["POST"])
        self.ctx.add_routes([document(route, route_doc(config, self.pattern.name))])
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopped"
        for _ in range(100):  # bounded: a request stuck in ingest does not hold shutdown up
            if not self.busy:
                break
            await asyncio.sleep(0.05)
        if self.deliveries is not None:
            await self.deliveries.close()
            self.deliveries = None

    async def handle(self, request: Request) -> Response:
        if self.state != "running":
            return error(503, "input is stopping", retry_after=1)
        self.busy += 1
        try:
            return await self.answer(request)
        finally:
            self.busy -= 1

    def unauthorized(self, request: Request, reason: str) -> JSONResponse:
        """401: counted and logged; nothing of the request is kept."""
        self.refused.inc()
        client = request.client.host if request.client else ""
        logger.warning("webhook refused", input=self.name, reason=reason, client=client)
        return error(401, reason)

    def check(self, request: Request, body: bytes) -> str | None:
        """Why the request's signature does not hold, or None when it does."""
        given = request.headers.get(self.signature_header)
        if not given:
            return f"missing signature ({self.signature_header})"
        timestamp = None
        if self.config.style == "generic":
            timestamp = request.headers.get(self.config.timestamp_header)
            if not timestamp:
                return f"missing timestamp ({self.config.timestamp_header})"
        if not verify(self.secrets, body, given, timestamp):
            return "invalid signature"
        if timestamp is not None and not fresh(timestamp, self.config.replay_window, time.time()):
            return "timestamp outside the replay window"
        return None

    async def answer(self, request: Request) -> Response:
        if self.ctx.full():  # refused before the body is read (see InputContext)
            return error(503, "buffer full", retry_after=1)
        limit = self.pattern.security.max_body_bytes
        try:
            body = await read_body(request, limit)
        except BodyRefused as exc:  # too large (413), too slow (408) or the sender went away
            return error(exc.status, exc.message)
        why = self.check(request, body)
        if why is not None:
            return self.unauthorized(request, why)
        delivery = request.headers.get(self.id_header) if self.id_header else None
        if delivery is not None and len(delivery) > MAX_ID:
            return error(400, f"{self.id_header} longer than {MAX_ID} characters")
        values, problems = self.decode(request, body, delivery)
        if problems:
            return error(400, "invalid input", rejected=problems)
        if not values:
            return error(400, "empty body")
        if delivery and self.deliveries is not None and await self.deliveries.seen(delivery):
            self.duplicates.inc()
            ids = [v.message_id if isinstance(v, Message) else str(v["messageId"]) for v in values]
            return JSONResponse({"accepted": 0, "ids": ids, "duplicate": True})
        try:
            result = await self.ctx.ingest(values, source=self.name, reject_invalid=True, wait=False)
        except BackpressureError as exc:
            return error(503, str(exc), retry_after=max(1, round(exc.retry_after)))
        if result.rejected:
            rejected = [{"index": r.index, "reasons": r.reasons} for r in result.rejected]
            return error(400, "invalid input", rejected=rejected)
        if delivery and self.deliveries is not None:
            # recorded once the messages are durable: a crash in between means the
            # sender's redelivery is kept again, under the same message ids
            await self.deliveries.add(delivery)
        ids = [m.message_id for m in result.accepted]
        return JSONResponse({"accepted": len(ids), "ids": ids}, status_code=202)

    def decode(
        self, request: Request, body: bytes, delivery: str | None
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        """The values of the body (envelopes as they are, others as messages named after
        the delivery id), or the problems of the records that do not decode."""
        records = self.iface.new_codec().decode(body)
        problems = [{"index": i, "reasons": [r.error]} for i, r in enumerate(records) if r.error]
        if problems:
            return [], problems
        event = request.headers.get(GITHUB_EVENT, "").lower() if self.config.style == "github" else ""
        kind = event if EVENT_TYPE.fullmatch(event) else "data"
        values: list[Any] = []
        for i, record in enumerate(records):
            if is_envelope(record.value):
                values.append(record.value)  # its own id; checked by ingest
                continue
            message_id = stable_id("webhook", delivery, i) if delivery else new_message_id()
            values.append(Message(message_id, "", record.value, source=self.name, message_type=kind))
        return values, []
