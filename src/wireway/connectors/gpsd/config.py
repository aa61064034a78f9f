"""Options of the `gpsd` input."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import Meta

from wireway.connectors.durations import seconds
from wireway.connectors.hostport import parse_hostport

Duration = float | str
CLASS = re.compile(r"^[a-z][a-z0-9]{0,15}$")


class GpsdInputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Reads positions from gpsd (the GPS daemon, TCP port 2947): connects, reads gpsd's
    VERSION banner, sends `?WATCH={"enable":true,"json":true}` and turns gpsd's reports
    into messages, one per report, whose `messageType` is the report's class in lower
    case.

    `reports` chooses the classes kept. A `tpv` message (time-position-velocity) has
    the payload `{device, mode, fix, time, lat, lon, alt_m, alt_hae_m, alt_msl_m,
    speed_mps, track_deg, climb_mps, eph_m, epv_m}`: `mode` is gpsd's (0 unknown, 1
    no fix, 2 a 2D fix, 3 a 3D fix) and `fix` says the same in words (`no fix`, `2d`,
    `3d`); `alt_m` is the height above the ellipsoid when gpsd knows it (`altHAE`),
    else above sea level; `alt_msl_m` is `altMSL`, or `alt` from older gpsd versions.
    A value gpsd did not report (it never sends null: absent means unknown) is null.
    A `sky` message has `{device, time, satellites_used, satellites_seen, hdop, vdop,
    pdop}`. Any other class named in `reports` (`gst`, `att`, `pps`, ...) is passed as
    gpsd sent it, without its `class` key.

    Every TPV with a fix (mode 2 or 3) is also the input's newest position on the
    engine's position board, which the `gps` step attaches to other messages.

    A TPV without a fix (mode 0 or 1) is still a message; the input's state is then
    `no fix` (in /status), but it is not down: gpsd is there and the receiver is
    looking for satellites. The input is down (and /health `degraded`) while gpsd
    cannot be reached or has closed the connection: it connects again after 1 s, then
    twice as long each time up to `max_backoff`, and sends its WATCH again. It is down
    too when connected but no TPV has arrived for `stale_after` (gpsd without a
    receiver accepts connections and says nothing), and up with the next TPV.
    """

    address: Annotated[str, Meta(description="gpsd's host:port", examples=["127.0.0.1:2947"])] = (
        "127.0.0.1:2947"
    )
    device: Annotated[
        str | None, Meta(description="watch only this device of gpsd (its path, e.g. /dev/ttyACM0)")
    ] = None
    reports: Annotated[
        list[str], Meta(description="the report classes that become messages (lower case)")
    ] = msgspec.field(default_factory=lambda: ["tpv", "sky"])
    stale_after: Annotated[
        Duration, Meta(description="down when connected but no TPV came for this long")
    ] = 10.0
    max_backoff: Annotated[Duration, Meta(description="longest wait between connection attempts")] = 30.0

    def __post_init__(self) -> None:
        try:
            parse_hostport(self.address)
        except ValueError:
            raise ValueError("expected host:port, e.g. 127.0.0.1:2947 - at `$.address`") from None
        if not self.reports:
            raise ValueError("name at least one report class, e.g. [tpv] - at `$.reports`")
        for i, name in enumerate(self.reports):
            if not CLASS.match(name):
                raise ValueError(f"expected a report class in lower case such as tpv - at `$.reports[{i}]`")
        for key in ("stale_after", "max_backoff"):
            seconds(getattr(self, key), key)
