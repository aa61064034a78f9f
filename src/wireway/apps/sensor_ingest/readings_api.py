"""The query API over `sensor_readings`: paged listing and a streamed export.

`GET /api/v1/readings?device_id=&sensor_type=&since=&until=&limit=&cursor=` answers
`{"readings": [...], "next_cursor": "..." | null, "count": n}` ordered by
(timestamp, id). `since` is inclusive and `until` exclusive (RFC 3339). Paging is by
keyset: `next_cursor` is an opaque token for the last row returned (base64 of its
exact timestamp and id), so a page is never skipped or repeated while rows are
added; it is null on the last page. `limit` is 1 to 1000 (default 100).

`GET /api/v1/readings/export?format=csv|jsonl` (same filters, default csv) streams
every matching row, fetched 1000 at a time: CSV with a header row
`id,device_id,timestamp,received_at,sensor_type,message_id,data,metadata` (JSON
text in the last two, empty for null), or JSON lines of the listing's objects.

Bad parameters answer 400 `{"error": ..., "details": [...]}`; an unreachable
database 503. `authorize(request)` runs first and its Response, if any, is sent.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from wireway.connectors.sql.db import Database, json_text, parse_timestamp
from wireway.errors import ConnectorError, NotConnected
from wireway.observability import logging as log

logger = log.get("readings-api")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
EXPORT_PAGE = 1000
FILTERS = ("device_id", "sensor_type", "since", "until")
COLUMNS = ("id", "device_id", "timestamp", "received_at", "sensor_type", "data", "metadata",
           "message_id")  # fmt: skip
CSV_COLUMNS = ("id", "device_id", "timestamp", "received_at", "sensor_type", "message_id",
               "data", "metadata")  # fmt: skip
_MAX_LENGTH = {"device_id": 100, "sensor_type": 50}
# the cursor keeps the stored timestamp exactly (PostgreSQL: microseconds)
_CURSOR_TS = {
    "postgresql": "to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    "sqlite": "timestamp",
}
_encoder = msgspec.json.Encoder()

GetDb = Callable[[], Database | None]
Authorize = Callable[[Request], Awaitable[Response | None]]


class BadRequest(Exception):
    """Query parameters that cannot be used; `details` says which and why."""

    def __init__(self, details: list[str]) -> None:
        super().__init__("; ".join(details))
        self.details = details


@dataclass
class Query:
    """A parsed, checked query."""

    device_id: str | None = None
    sensor_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    after: tuple[str, int] | None = None  # (cursor timestamp text, id)
    format: str = "csv"


def encode_cursor(ts: str, row_id: int) -> str:
    raw = _encoder.encode([ts, row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[str, int]:
    """(timestamp text, id) from a cursor; raises ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        ts, row_id = msgspec.json.decode(raw, type=tuple[str, int])
        parse_timestamp(ts)
    except (binascii.Error, msgspec.DecodeError, msgspec.ValidationError, ValueError):
        raise ValueError("invalid cursor") from None
    return ts, row_id


def parse_query(params: Any, *, export: bool = False) -> Query:
    """Check the query parameters; raises BadRequest listing every problem."""
    known = (*FILTERS, "format") if export else (*FILTERS, "limit", "cursor")
    details: list[str] = []
    q = Query()
    for key in params:
        if key not in known:
            details.append(f"{key}: unknown parameter (known: {', '.join(known)})")
    for key in ("device_id", "sensor_type"):
        value = params.get(key)
        if value is None:
            continue
        if not value or len(value) > _MAX_LENGTH[key]:
            details.append(f"{key}: must be 1 to {_MAX_LENGTH[key]} characters")
        else:
            setattr(q, key, value)
    for key in ("since", "until"):
        value = params.get(key)
        if value is None:
            continue
        try:
            setattr(q, key, parse_timestamp(value))
        except ValueError:
            details.append(f"{key}: not an RFC 3339 timestamp: {value!r:.60}")
    if q.since is not None and q.until is not None and q.until <= q.since:
        details.append("until: must be later than since")
    if not export:
        limit = params.get("limit")
        if limit is not None:
            if limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT:
                q.limit = int(limit)
            else:
                details.append(f"limit: must be an integer from 1 to {MAX_LIMIT}")
        cursor = params.get("cursor")
        if cursor is not None:
            try:
                q.after = decode_cursor(cursor)
            except ValueError:
                details.append("cursor: invalid (use next_cursor from a previous page)")
    else:
        fmt = params.get("format", "csv")
        if fmt not in ("csv", "jsonl"):
            details.append("format: must be csv or jsonl")
        q.format = fmt
    if details:
        raise BadRequest(details)
    return q


async def fetch_page(db: Database, q: Query, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` rows after `q.after` in (timestamp, id) order; each has `cursor_ts`."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if q.device_id is not None:
        where.append(f"device_id = {arg(q.device_id)}")
    if q.sensor_type is not None:
        where.append(f"sensor_type = {arg(q.sensor_type)}")
    if q.since is not None:
        where.append(f"timestamp >= {arg(q.since)}")
    if q.until is not None:
        where.append(f"timestamp < {arg(q.until)}")
    if q.after is not None:
        ts, row_id = q.after
        # SQLite compares the stored text as is; PostgreSQL the exact instant
        at: Any = parse_timestamp(ts) if db.dialect == "postgresql" else ts
        where.append(f"(timestamp, id) > ({arg(at)}::timestamptz, {arg(row_id)}::bigint)")
    sql = (
        f"SELECT {', '.join(COLUMNS)}, {_CURSOR_TS[db.dialect]} AS cursor_ts"
        " FROM sensor_readings"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY timestamp, id LIMIT {arg(limit)}"
    )
    return await db.fetch(sql, *args)


def _bad(details: list[str]) -> Response:
    body = {"error": "invalid query parameters", "details": details}
    return Response(_encoder.encode(body), status_code=400, media_type="application/json")


def _unavailable(exc: ConnectorError) -> Response:
    logger.warning("readings query failed", error=str(exc))
    body = {"error": "storage unavailable", "details": [str(exc)]}
    return Response(_encoder.encode(body), status_code=503, media_type="application/json")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in COLUMNS}


def _csv(rows: list[dict[str, Any]], header: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for r in rows:
        data = json_text(r["data"])
        meta = json_text(r["metadata"]) if r["metadata"] is not None else ""
        row = (r["id"], r["device_id"], r["timestamp"], r["received_at"], r["sensor_type"],
               r["message_id"], data, meta)  # fmt: skip
        writer.writerow(row)
    return out.getvalue()


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(_encoder.encode(_public(r)) + b"\n" for r in rows)


def readings_routes(get_db: GetDb, authorize: Authorize) -> list[BaseRoute]:
    """The routes of the readings API (`authorize` returns a Response to refuse, or None)."""

    async def list_readings(request: Request) -> Response:
        denied = await authorize(request)
        if denied is not None:
            return denied
        try:
            q = parse_query(request.query_params)
        except BadRequest as exc:
            return _bad(exc.details)
        db = get_db()
        if db is None:
            return _unavailable(NotConnected("the database is not open yet"))
        try:
            rows = await fetch_page(db, q, q.limit + 1)
        except ConnectorError as exc:
            return _unavailable(exc)
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        last = rows[-1] if rows else None
        body = {
            "readings": [_public(r) for r in rows],
            "next_cursor": encode_cursor(last["cursor_ts"], last["id"]) if more and last else None,
            "count": len(rows),
        }
        return Response(_encoder.encode(body), media_type="application/json")

    async def export(request: Request) -> Response:
        denied = await authorize(request)
        if denied is not None:
            return denied
        try:
            q = parse_query(request.query_params, export=True)
        except BadRequest as exc:
            return _bad(exc.details)
        db = get_db()
        if db is None:
            return _unavailable(NotConnected("the database is not open yet"))
        try:  # the first page before answering, so an unreachable database is a 503
            first = await fetch_page(db, q, EXPORT_PAGE)
        except ConnectorError as exc:
            return _unavailable(exc)

        async def chunks() -> AsyncIterator[bytes]:
            page, header = first, True
            while True:
                if q.format == "csv":
                    yield _csv(page, header).encode()
                elif page:
                    yield _jsonl(page)
                header = False
                if len(page) < EXPORT_PAGE:
                    return
                q.after = (page[-1]["cursor_ts"], page[-1]["id"])
                try:
                    page = await fetch_page(db, q, EXPORT_PAGE)
                except ConnectorError as exc:
                    # headers are sent: end the stream with an error, never a silent cut
                    logger.warning("readings export interrupted", error=str(exc))
                    raise

        ext, media = ("csv", "text/csv; charset=utf-8") if q.format == "csv" else (
            "jsonl", "application/x-ndjson")  # fmt: skip
        return StreamingResponse(
            chunks(),
            media_type=media,
            headers={"content-disposition": f'attachment; filename="readings.{ext}"'},
        )

    return [
        Route("/api/v1/readings", list_readings, methods=["GET"]),
        Route("/api/v1/readings/export", export, methods=["GET"]),
    ]
