"""Options of the `mavlink` input."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import Meta

from wireway.connectors.durations import seconds
from wireway.connectors.hostport import parse_hostport

Duration = float | str
NETWORK = ("udpin:", "udpout:", "udp:", "udpbcast:", "tcp:", "tcpin:")
MESSAGE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class MavlinkInputConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Reads MAVLink (v1 and v2) from a flight controller, or from MAVProxy or
    mavlink-router forwarding one, with pymavlink on a worker thread; the messages it
    receives are handed to the engine in batches.

    `connection` is a pymavlink connection string: `udpin:127.0.0.1:14550` listens for
    what `mavproxy.py --out udp:127.0.0.1:14550` sends (`udpin:0.0.0.0:14550` to hear
    other machines too), `tcp:127.0.0.1:5760` connects to a TCP server (SITL), and a
    serial device such as `/dev/ttyACM0` is read at `baud`.

    `messages` chooses the MAVLink messages kept; each becomes a message whose
    `messageType` is its name in lower case. `GLOBAL_POSITION_INT` becomes `{system,
    component, time_boot_ms, lat, lon, alt_m, alt_msl_m, relative_alt_m, vx_mps,
    vy_mps, vz_mps, heading_deg}` and `GPS_RAW_INT` `{system, component, time, fix_type,
    fix, lat, lon, alt_m, alt_hae_m, alt_msl_m, hdop, vdop, speed_mps, track_deg,
    satellites, h_acc_m, v_acc_m}`: degrees from degE7, metres from millimetres, m/s
    from cm/s, degrees from centidegrees; a value the sender marks unknown (UINT16_MAX,
    255 satellites, an accuracy or ellipsoid height of 0) is null. `alt_m` is the height
    above the ellipsoid when the sender gives it, else above sea level. `fix` is `no
    fix`, `2d`, `3d`, `dgps`, `rtk float`, `rtk fixed`, `static` or `ppp`.
    `NAMED_VALUE_FLOAT` and `NAMED_VALUE_INT` become `{<name>: value, system,
    component, time_boot_ms}`; any other message its fields as pymavlink decodes them.

    Each position (a GLOBAL_POSITION_INT that is not 0/0, a GPS_RAW_INT with at least a
    2D fix) is also the input's newest fix on the engine's position board, which the
    `gps` step attaches to other messages.

    The input is down (and /health `degraded`) until a HEARTBEAT arrives and whenever
    none has arrived for `heartbeat_timeout`; a connection that fails (a serial device
    unplugged) is opened again after 1 s, then twice as long each time up to
    `max_backoff`. At most `max_pending` messages wait for the engine; more are
    dropped (and logged), as a datagram socket's full buffer would.
    """

    connection: Annotated[
        str,
        Meta(
            description="pymavlink connection: udpin:HOST:PORT, tcp:HOST:PORT, or a serial device",
            examples=["udpin:127.0.0.1:14550", "/dev/ttyACM0"],
        ),
    ] = "udpin:127.0.0.1:14550"
    baud: Annotated[int, Meta(gt=0, description="serial speed (serial devices only)")] = 57600
    messages: Annotated[list[str], Meta(description="the MAVLink messages kept, by name")] = msgspec.field(
        default_factory=lambda: ["GLOBAL_POSITION_INT", "GPS_RAW_INT"]
    )
    system: Annotated[
        Annotated[int, Meta(ge=1, le=255)] | None,
        Meta(description="keep only messages of this system id (the vehicle)"),
    ] = None
    dialect: Annotated[str, Meta(description="pymavlink dialect")] = "ardupilotmega"
    heartbeat_timeout: Annotated[Duration, Meta(description="down when no HEARTBEAT came for this long")] = (
        5.0
    )
    max_backoff: Annotated[Duration, Meta(description="longest wait between connection attempts")] = 30.0
    max_pending: Annotated[
        int, Meta(gt=0, description="messages waiting for the engine; more are dropped")
    ] = 10000

    def __post_init__(self) -> None:
        connection = self.connection
        network = next((p for p in NETWORK if connection.startswith(p)), None)
        if network is not None:
            try:
                parse_hostport(connection[len(network) :])
            except ValueError:
                raise ValueError(
                    f"expected {network}HOST:PORT, e.g. udpin:127.0.0.1:14550 - at `$.connection`"
                ) from None
        elif not connection.startswith("/") and not re.match(r"^COM\d+$", connection):
            raise ValueError(
                "expected udpin:HOST:PORT, udpout:, tcp:, tcpin:, or a serial device path - at `$.connection`"
            )
        if not self.messages:
            raise ValueError("name at least one message, e.g. [GLOBAL_POSITION_INT] - at `$.messages`")
        for i, name in enumerate(self.messages):
            if not MESSAGE.match(name):
                raise ValueError(
                    f"expected a MAVLink message name such as GPS_RAW_INT - at `$.messages[{i}]`"
                )
        if not re.match(r"^[a-zA-Z0-9_]+$", self.dialect):
            raise ValueError("expected a dialect name such as ardupilotmega or common - at `$.dialect`")
        for key in ("heartbeat_timeout", "max_backoff"):
            seconds(getattr(self, key), key)
