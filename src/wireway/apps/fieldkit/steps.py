"""`fieldkit_filter`: the operators' settings applied to each WiGLE row before `gps` and `track`."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from wireway.apps.fieldkit.api import api_app
from wireway.apps.fieldkit.app import FieldKit, KitOptions
from wireway.apps.fieldkit.settings import SENSITIVITY_FACTORS, Settings
from wireway.connectors.hostport import parse_hostport
from wireway.envelope import Message
from wireway.processors.base import Processor, StepResult
from wireway.registry import register_processor


class FieldkitFilterConfig(msgspec.Struct, forbid_unknown_fields=True):
    """The field kit's settings and its filter step.

    Applies what the operators set through WigleToTAK's API (served on `listen`,
    default port 8000; the page at `/`) to each row of Kismet's WiGLE CSV: nothing
    passes while the broadcast is stopped; rows of the live input (`live_input`)
    pass in `realtime` mode, rows of the `fieldkit_replay` input (a chosen file) in
    `postcollection`; a whitelisted SSID or MAC (a known device) is dropped; a
    blacklisted one gets its ARGB colour. Each row that passes gets a `tak` object
    the pattern's `cot` format maps: `type`, `callsign` (the SSID, or the MAC when
    hidden), `remarks` (channel, frequency, RSSI, authentication, first seen, MAC),
    `color` (null unless blacklisted), `detail` (WigleToTAK2's ellipse sized by
    RSSI and the antenna's sensitivity when `ellipse` is on), and whether it goes
    to the multicast group (`multicast`) and to the TAK server (`server`).

    The options below are the first values: once an operator changes a setting it
    is kept in `<data-dir>/fieldkit/settings.json` and wins over them. `directory`
    arguments of the API must lie inside `wigle_dir` or one of `roots`. With
    `api_key` set, every API route but the page needs it (`X-API-Key` header or
    `Authorization: Bearer`).
    """

    wigle_dir: Annotated[str, Meta(description="where Kismet writes its .wiglecsv files")]
    roots: Annotated[list[str], Meta(description="more folders the API may list and replay")] = []
    listen: Annotated[str, Meta(description="HOST:PORT of the operators' API and page (empty: off)")] = (
        "0.0.0.0:8000"
    )
    api_key: Annotated[str, Meta(description="key the API asks for (empty: none)")] = ""
    live_input: Annotated[str, Meta(description="the input following Kismet's newest file")] = "kismet"
    outputs: Annotated[
        list[str], Meta(description="the outputs to TAK (their deliveries count as events sent)")
    ] = msgspec.field(default_factory=lambda: ["multicast", "server", "tak-server"])
    broadcast: Annotated[bool, Meta(description="send from the start (before any operator says)")] = True
    analysis_mode: Annotated[
        Literal["realtime", "postcollection"],
        Meta(description="`realtime`: the live file; `postcollection`: a chosen file replayed"),
    ] = "realtime"
    multicast: Annotated[bool, Meta(description="send to the multicast group")] = True
    tak_server: Annotated[str, Meta(description="IP:PORT of a TAK server to send to too (empty: none)")] = ""
    antenna: Annotated[str, Meta(description="standard, alfa_card, high_gain, rpi_internal or custom")] = (
        "standard"
    )
    custom_factor: Annotated[float, Meta(gt=0, description="the `custom` antenna's factor")] = 1.0
    ellipse: Annotated[bool, Meta(description="draw WigleToTAK2's ellipse (type u-d-c-e) per device")] = False
    cot_type: Annotated[str, Meta(description="CoT type of a device's marker")] = "a-u-G"

    def __post_init__(self) -> None:
        if self.listen:
            try:
                parse_hostport(self.listen)
            except ValueError:
                raise ValueError("expected HOST:PORT - at `$.listen`") from None
        if self.tak_server:
            try:
                parse_hostport(self.tak_server)
            except ValueError:
                raise ValueError("expected IP:PORT - at `$.tak_server`") from None
        if self.antenna not in SENSITIVITY_FACTORS:
            raise ValueError(f"expected one of {', '.join(SENSITIVITY_FACTORS)} - at `$.antenna`")

    def first(self) -> Settings:
        ip, port = parse_hostport(self.tak_server) if self.tak_server else ("", 0)
        return Settings(
            broadcasting=self.broadcast,
            analysis_mode=self.analysis_mode,
            multicast=self.multicast,
            tak_server_ip=ip,
            tak_server_port=str(port) if port else "",
            antenna_sensitivity=self.antenna,
            custom_factor=self.custom_factor,
        )


def _shown(value: Any, unit: str = "") -> str:
    return "unknown" if value is None or value == "" else f"{value}{unit}"


def remarks(p: dict[str, Any]) -> str:
    get = p.get
    channel, mhz, rssi = get("channel"), get("frequency_mhz"), get("rssi")
    auth, first, mac = get("auth_mode"), get("first_seen"), get("mac")
    if None in (channel, mhz, rssi, auth, first, mac) or "" in (channel, mhz, rssi, auth, first, mac):
        return (
            f"Channel: {_shown(channel)}, Frequency: {_shown(mhz, ' MHz')}, "
            f"RSSI: {_shown(rssi, ' dBm')}, Authentication: {_shown(auth)}, "
            f"First seen: {_shown(first)}, MAC: {_shown(mac)}"
        )
    # every value known (the usual row)
    return (
        f"Channel: {channel}, Frequency: {mhz} MHz, RSSI: {rssi} dBm, Authentication: {auth}, "
        f"First seen: {first}, MAC: {mac}"
    )


def ellipse(p: dict[str, Any], factor: float, mac: str) -> dict[str, Any]:
    """WigleToTAK2's ellipse: weaker signals and more sensitive antennas draw it larger
    (20 to 500 m), at least twice the position's accuracy; its angle is fixed per device
    so a refreshed marker does not turn."""
    try:
        major = min(max(20.0, abs(float(p["rssi"])) / factor * 2), 500.0)
        minor = major * 0.8
        accuracy = p.get("accuracy_m")
        if accuracy:
            major = max(major, float(accuracy) * 2)
    except (KeyError, TypeError, ValueError):
        major, minor = 100.0, 80.0
    angle = zlib.crc32(mac.encode()) % 180
    return {"shape": {"ellipse": {"@major": round(major, 1), "@minor": round(minor, 1), "@angle": angle}}}


@register_processor("fieldkit_filter", config=FieldkitFilterConfig)
class FieldkitFilter(Processor):
    """Broadcast on/off, analysis mode, whitelist, blacklist colours and the ellipse."""

    service_class = FieldKit

    def __init__(self, config: FieldkitFilterConfig, *, base_dir: Path) -> None:
        self.config = config
        self.kit: FieldKit | None = None

    def use_service(self, service: FieldKit) -> None:
        cfg = self.config
        options = KitOptions(
            wigle_dir=cfg.wigle_dir,
            roots=list(cfg.roots),
            listen=cfg.listen,
            api_key=cfg.api_key,
            live_input=cfg.live_input,
            first=cfg.first(),
        )
        service.configure(options, self.pattern, cfg.outputs)
        service.asgi = api_app
        self.kit = service

    async def process(self, batch: list[Message]) -> StepResult:
        kit = self.kit
        assert kit is not None, "fieldkit_filter runs inside an engine"
        s = kit.settings
        live = self.config.live_input
        realtime = s.analysis_mode == "realtime"
        ellipse_on = self.config.ellipse
        kind = "u-d-c-e" if ellipse_on else self.config.cot_type
        server = s.server() is not None
        factor = s.sensitivity() if ellipse_on else 1.0
        white_macs, white_ssids = s.whitelisted_macs, s.whitelisted_ssids
        black_ssids, black_macs = s.blacklisted_ssids, s.blacklisted_macs
        seen = kit.counts.device
        rows = 0
        fix: dict[str, Any] | None = None  # the batch's last row with a position, for the page
        passed: list[Message] = []
        for msg in batch:
            p = msg.payload
            if not isinstance(p, dict):
                continue
            if "mac" not in p:  # the kit's own position (gpsd, mavlink): for the page only
                self._counted(kit, rows, fix)  # the rows before it, in their order
                rows, fix = 0, None
                kit.fix(p, msg.source)
                continue
            rows += 1
            if _fixed(p):
                fix = p
            if not s.broadcasting or (msg.source == live) != realtime:
                continue
            mac = str(p.get("mac") or "").upper()
            ssid = str(p.get("ssid") or "")
            if mac in white_macs or (ssid and ssid in white_ssids):
                continue
            color = black_ssids.get(ssid) if ssid else None
            if color is None:
                color = black_macs.get(mac)
            tak = {
                "type": kind,
                "callsign": ssid or mac,
                "remarks": remarks(p),
                "color": color,
                "detail": ellipse(p, factor, mac) if ellipse_on else {},
                "multicast": s.multicast,
                "server": server,
            }
            seen(mac)
            passed.append(msgspec.structs.replace(msg, payload={**p, "mac": mac, "tak": tak}))
        self._counted(kit, rows, fix)
        return StepResult(passed)

    @staticmethod
    def _counted(kit: FieldKit, rows: int, fix: dict[str, Any] | None) -> None:
        """Rows read for the page's counts, and the last one's position as the kit's
        (what `FieldKit.row` does row by row, once for the rows of a batch)."""
        kit.counts.rows += rows
        if fix is not None and not kit.positions:
            kit.fix(fix, "kismet")


def _fixed(p: dict[str, Any]) -> bool:
    """Whether `FieldKit.fix` takes this row's position."""
    lat, lon = p.get("lat"), p.get("lon")
    return isinstance(lat, int | float) and isinstance(lon, int | float) and bool(lat or lon)
