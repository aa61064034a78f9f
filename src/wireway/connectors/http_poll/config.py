"""Options of the `http_poll` input."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from wireway.connectors.durations import seconds
from wireway.expr import Expr, ExpressionError

PLACEHOLDER = "{cursor}"

Duration = float | str


def expression(source: str, key: str) -> Expr:
    try:
        return Expr(source)
    except ExpressionError as exc:
        raise ValueError(f"invalid expression: {exc} - at `$.{key}`") from None


def _mentions(value: Any) -> bool:
    """Whether a body holds the `{cursor}` placeholder somewhere."""
    if isinstance(value, str):
        return PLACEHOLDER in value
    if isinstance(value, dict):
        return any(_mentions(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v) for v in value)
    return False


class BasicAuth(msgspec.Struct, forbid_unknown_fields=True):
    """HTTP basic authentication."""

    username: str
    password: str = ""


class HttpPollInputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Polls an HTTP endpoint at an interval and turns what it answers into messages,
    carrying a cursor from one response into the next request so each poll asks only
    for what is new.

    The response body is decoded with `format` (default json). `items` is a CEL
    expression over `response` (`response.status`, `response.headers`,
    `response.body`) that gives the array to turn into messages, one per element (e.g.
    `response.body.items`); without it a JSON array body is one message per element
    and anything else one message.

    `cursor` is a CEL expression over the last `response` (and the previous value,
    `cursor`) giving the next cursor, for instance the newest timestamp seen,
    `response.body.items.map(i, i.ts).max()` (`max()` and `min()` of a list are
    available), or a server's own `response.body.next`. An error (an empty page:
    `max()` of nothing) or null keeps the previous cursor. The cursor goes into the
    next request as the query parameter `cursor_param`, or wherever `{cursor}` appears
    in `url` or `body` (a body string that is exactly `{cursor}` becomes the value
    itself, a number stays a number). Before the first cursor, `initial_cursor` is used
    (a missing cursor leaves the parameter out and the placeholder empty).

    The cursor is stored with the messages of the response it came from, in one
    commit: after a restart polling goes on from the last stored cursor, and a response
    whose messages were not kept is asked for again. With `id`, a CEL expression over
    `item`, each message's id is derived from it, so an item fetched twice (a cursor
    compared with `>=`) is the same message for a `dedupe` step or an idempotent output.

    A non-2xx answer, a network error, a timeout or a body that cannot be decoded is
    logged and counted, and the poll retried after 1 s (or `interval` if shorter),
    then twice as long each time up to `max_backoff`; meanwhile /health shows the
    input `down`. With `stale_after`, the input is also shown `down` (and /health
    `degraded`) when no new item has arrived for that long, and `up` again with the
    next new item.
    """

    url: Annotated[
        str,
        Meta(
            description="http(s) URL to poll; may hold `{cursor}`", examples=["http://127.0.0.1:9000/events"]
        ),
    ]
    method: Annotated[Literal["GET", "POST"], Meta(description="POST sends `body`")] = "GET"
    body: Annotated[Any, Meta(description="POST body: a JSON value, or a string sent as it is")] = None
    headers: Annotated[dict[str, str], Meta(description="request headers")] = {}
    bearer_token: Annotated[str | None, Meta(description="sent as `Authorization: Bearer ...`")] = None
    basic_auth: Annotated[BasicAuth | None, Meta(description="{username, password}")] = None
    interval: Annotated[Duration, Meta(description="time between polls: seconds, or 30s / 5m / 1h")] = 60.0
    timeout: Annotated[Duration, Meta(description="per request")] = 10.0
    items: Annotated[str | None, Meta(description="CEL over `response`: the array of items")] = None
    cursor: Annotated[str | None, Meta(description="CEL over `response` and `cursor`: the next cursor")] = (
        None
    )
    cursor_param: Annotated[str | None, Meta(description="query parameter that carries the cursor")] = None
    initial_cursor: Annotated[str | int | float | None, Meta(description="cursor of the first poll")] = None
    id: Annotated[str | None, Meta(description="CEL over `item`: what a message id is derived from")] = None
    stale_after: Annotated[Duration | None, Meta(description="down when nothing new for this long")] = None
    max_backoff: Annotated[Duration, Meta(description="longest wait between retries")] = 60.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url.replace(PLACEHOLDER, "cursor"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL - at `$.url`")
        if self.body is not None and self.method != "POST":
            raise ValueError("a body is sent with `method: POST` only - at `$.body`")
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("give either `bearer_token` or `basic_auth` - at `$.basic_auth`")
        for key in ("interval", "timeout", "max_backoff", "stale_after"):
            value = getattr(self, key)
            if value is not None:
                seconds(value, key)
        for key in ("items", "cursor", "id"):
            source = getattr(self, key)
            if source is not None:
                expression(source, key)
        uses_cursor = self.cursor_param is not None or PLACEHOLDER in self.url or _mentions(self.body)
        if self.cursor is not None and not uses_cursor:
            raise ValueError(
                "the cursor goes nowhere: set `cursor_param` or put {cursor} in url or body - at `$.cursor`"
            )
        if self.cursor is None and uses_cursor:
            key = (
                "cursor_param"
                if self.cursor_param is not None
                else "url"
                if PLACEHOLDER in self.url
                else "body"
            )
            raise ValueError(f"a cursor is used but `cursor` (a CEL expression) is not set - at `$.{key}`")
