"""Options of the `kismet` input, and Kismet's field simplification lists."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from wireway.connectors.durations import seconds

Duration = float | str
Field = str | list[str]  # a field path, or [path, name it is returned as]

LAST_TIME = "kismet.device.base.last_time"
_TOPIC = re.compile(r"^[A-Z][A-Z0-9_]*$")

# what each device record is reduced to, under plain names (Kismet's `fields` list)
DEFAULT_FIELDS: list[Field] = [
    ["kismet.device.base.key", "key"],
    ["kismet.device.base.macaddr", "mac"],
    ["kismet.device.base.name", "name"],
    ["kismet.device.base.commonname", "commonname"],
    ["kismet.device.base.type", "type"],
    ["kismet.device.base.phyname", "phy"],
    ["kismet.device.base.channel", "channel"],
    ["kismet.device.base.frequency", "frequency"],
    ["kismet.device.base.crypt", "crypt"],
    ["kismet.device.base.manuf", "manuf"],
    ["kismet.device.base.first_time", "first_time"],
    [LAST_TIME, "last_time"],
    ["kismet.device.base.signal/kismet.common.signal.last_signal", "rssi"],
    ["kismet.device.base.location/kismet.common.location.last/kismet.common.location.geopoint", "geopoint"],
    ["kismet.device.base.location/kismet.common.location.last/kismet.common.location.alt", "alt"],
    ["kismet.device.base.location/kismet.common.location.last/kismet.common.location.fix", "fix"],
    ["dot11.device/dot11.device.last_beaconed_ssid_record/dot11.advertisedssid.ssid", "ssid"],
]


def returned_name(field: Field) -> str:
    """The key a field comes back under: its new name, or the last part of its path."""
    if isinstance(field, list):
        return field[1]
    return field.rsplit("/", 1)[-1]


def path_of(field: Field) -> str:
    return field[0] if isinstance(field, list) else field


class KismetInputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Reads a Kismet server's REST API: every `interval`, the devices active since the
    last poll (`/devices/last-time/<ts>/devices.json`), one message per device; and,
    with `eventbus`, the events of those topics from its eventbus websocket.

    Each device is reduced to `fields`, Kismet's field simplification list: a field
    path (`kismet.device.base.channel`, or across records
    `kismet.device.base.signal/kismet.common.signal.last_signal`), returned under the
    last part of its path, or `[path, name]`, returned as `name`. The default gives
    plain keys: `key`, `mac`, `name`, `commonname`, `type` (`Wi-Fi AP`, ...), `phy`,
    `channel`, `frequency` (kHz), `crypt`, `manuf`, `first_time` and `last_time` (Unix
    seconds), `rssi` (last signal, dBm), `geopoint` (`[lon, lat]` of the last
    location), `alt`, `fix` and `ssid` (the last beaconed SSID of an access point).
    Kismet returns `0` for a field a device does not have (no location yet, a client's
    SSID). `kismet.device.base.last_time` is always asked for (as `last_time` when the
    list lacks it): it is the cursor. `regex` is passed on as Kismet's regex filter
    (`[[field path, PCRE], ...]`, a device matching any is returned).

    The cursor is the newest `last_time` seen; each poll asks for the devices seen in
    that second or later (Kismet compares with `>`, so a device active again in the
    same second is not missed), and leaves out the records of that second it already
    sent unchanged. A message's id is derived from its record, so a record sent twice
    (after a restart) is the same message for a `dedupe` step or an idempotent output;
    a `track` step passes a device only when it moved or changed. The cursor is stored
    with the messages of the poll it came from: after a restart polling goes on from
    there. Before the first cursor the poll asks for the devices active in the last
    `since` (without it: every device Kismet knows).

    Authentication: `api_token` (an API key made in Kismet, sent as the `KISMET`
    cookie; a `readonly` role is enough), or `username` and `password` (HTTP basic
    authentication, Kismet then keeps a session cookie). A refused login (401/403), a
    non-2xx answer, a network error or a body that is not a JSON array is logged and
    counted, and the poll retried after 1 s (or `interval` if shorter), then twice as
    long each time up to `max_backoff`; meanwhile /health shows the input `down`
    (degraded). Every `health_interval` the input also asks `/system/timestamp.json`
    and is shown `down` while Kismet does not answer it (asking again sooner, with
    the same backoff, until it does).

    `eventbus` lists topics to subscribe to on `/eventbus/events.ws` (`ALERT`,
    `MESSAGE`, `DATASOURCE_OPENED`, `DATASOURCE_CLOSED`, `DATASOURCE_ERROR`,
    `DATASOURCE_PAUSED`, `DATASOURCE_RESUMED`, `GPS_LOCATION`, ...). Each event is a
    message of type `event` with payload `{topic, event}` (the event as Kismet sends
    it: an alert or message record, or a data source's UUID). The socket reconnects
    with backoff and subscribes again; it is shown `down` while disconnected. Events
    are live: what Kismet publishes while the socket is down is not sent again.
    `devices: false` leaves the device poll out (events only).
    """

    url: Annotated[str, Meta(description="Kismet's web server", examples=["http://127.0.0.1:2501"])] = (
        "http://127.0.0.1:2501"
    )
    api_token: Annotated[str | None, Meta(description="API token, sent as the `KISMET` cookie")] = None
    username: Annotated[str | None, Meta(description="login (HTTP basic authentication)")] = None
    password: Annotated[str, Meta(description="password of `username`")] = ""
    devices: Annotated[bool, Meta(description="poll the devices (false: eventbus only)")] = True
    interval: Annotated[Duration, Meta(description="time between polls: seconds, or 2s / 1m")] = 5.0
    since: Annotated[
        Duration | None, Meta(description="first poll: devices active this long ago or later (default all)")
    ] = None
    fields: Annotated[
        list[Field] | None, Meta(description="field paths, or [path, name] (default: the plain keys above)")
    ] = None
    regex: Annotated[list[list[str]] | None, Meta(description="Kismet regex filter: [[path, PCRE], ...]")] = (
        None
    )
    eventbus: Annotated[list[str], Meta(description="eventbus topics to subscribe to")] = []
    timeout: Annotated[Duration, Meta(description="per request")] = 10.0
    health_interval: Annotated[Duration, Meta(description="time between /system/timestamp.json checks")] = (
        10.0
    )
    max_backoff: Annotated[Duration, Meta(description="longest wait between retries")] = 60.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL - at `$.url`")
        if parts.query or parts.path not in ("", "/"):
            raise ValueError("expected the server's address alone (http://host:port) - at `$.url`")
        if self.api_token is not None and self.username is not None:
            raise ValueError("give either `api_token` or `username` and `password` - at `$.username`")
        for key in ("interval", "timeout", "health_interval", "max_backoff", "since"):
            value = getattr(self, key)
            if value is not None:
                seconds(value, key)
        for i, field in enumerate(self.fields or []):
            if isinstance(field, str) and field.strip():
                continue
            if isinstance(field, list) and len(field) == 2 and all(s.strip() for s in field):
                continue
            raise ValueError(f"expected a field path or [path, name] - at `$.fields[{i}]`")
        for i, rule in enumerate(self.regex or []):
            if len(rule) != 2:
                raise ValueError(f"expected [field path, regular expression] - at `$.regex[{i}]`")
        for i, topic in enumerate(self.eventbus):
            if not _TOPIC.match(topic):
                raise ValueError(f"expected a topic in capitals, like ALERT - at `$.eventbus[{i}]`")
        if not self.devices and not self.eventbus:
            raise ValueError("nothing to read: `devices: false` needs `eventbus` topics - at `$.devices`")

    def request_fields(self) -> tuple[list[Field], str]:
        """The fields list sent to Kismet (with the cursor field) and the name the
        cursor comes back under."""
        fields = list(self.fields if self.fields is not None else DEFAULT_FIELDS)
        for field in fields:
            if path_of(field) == LAST_TIME:
                return fields, returned_name(field)
        return [*fields, [LAST_TIME, "last_time"]], "last_time"
