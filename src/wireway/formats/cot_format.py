"""`cot`: Cursor-on-Target events, as XML or TAK protocol version 1.

Decoding reads XML through defusedxml and TAK protocol v1 (mesh: `0xbf 0x01 0xbf`
then a protobuf; stream: `0xbf`, a varint length, a protobuf) through takproto, into
one shape: `{uid, type, how, time, start, stale, point: {lat, lon, hae, ce, le},
detail: {...}, protocol}` with `detail` as the `xml` format reads elements (attributes
`@name`). Encoding takes the same shape from the payload, any field replaced by a CEL
expression of the message (`set:`), and builds the XML with ElementTree, so every
value is escaped.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import takproto
from google.protobuf.message import DecodeError as ProtobufError

from wireway.envelope import Message, parse_timestamp
from wireway.expr import Expr, ExpressionError
from wireway.expr_fast import Reader, light_context
from wireway.formats.codec import Codec, Record
from wireway.formats.xml_format import build_into, element_value, parse, xml_text
from wireway.registry import register_format

UNKNOWN = 9999999.0  # CoT's "not known" for hae, ce and le
FIELDS = (
    "uid", "type", "how", "time", "start", "stale", "lat", "lon", "hae", "ce", "le",
    "callsign", "remarks", "color", "group_name", "group_role", "course", "speed", "detail",
)  # fmt: skip
_PROTO = {"mesh": takproto.TAKProtoVer.MESH, "stream": takproto.TAKProtoVer.STREAM}
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


class CotOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Options of the `cot` format.

    `set` maps CoT fields to CEL expressions of the message: `uid`, `type` (the CoT
    type, e.g. `a-u-G`), `how`, `time`, `start`, `stale` (RFC 3339 text or epoch
    seconds), `lat`, `lon`, `hae`, `ce`, `le`, `callsign`, `remarks`, `color` (ARGB
    integer), `group_name`, `group_role`, `course`, `speed`, and `detail` (an object
    of further elements, written as the `xml` format writes them). A field not set
    is read from a payload of the decoded shape (`uid`, `point.lat`, ...). Times are
    written in UTC with milliseconds and `Z`; `time` and `start` default to now and
    `stale` to `stale_seconds` later; an unknown `hae`, `ce` or `le` is `9999999.0`;
    latitude and longitude keep their full precision. `protocol: mesh` or `stream`
    writes TAK protocol version 1 instead of XML.
    """

    set: dict[str, str] = {}
    default_type: str = "a-u-G"
    default_how: str = "m-g"
    stale_seconds: float = 300.0
    protocol: Literal["xml", "mesh", "stream"] = "xml"

    def __post_init__(self) -> None:
        for key, source in self.set.items():
            if key not in FIELDS:
                raise ValueError(f"unknown CoT field `{key}` (known: {', '.join(FIELDS)}) - at `$.set.{key}`")
            try:
                Expr(source)
            except ExpressionError as exc:
                raise ValueError(f"{exc} - at `$.set.{key}`") from None
        if self.stale_seconds <= 0:
            raise ValueError("expected seconds above 0 - at `$.stale_seconds`")


def cot_time(value: Any) -> str:
    """A CoT timestamp: UTC, milliseconds, `Z`."""
    seconds = parse_timestamp(value) if isinstance(value, str) else float(value)
    try:
        stamp = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError):
        raise ValueError(f"not a time CoT can carry: {value!r}") from None
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: Any, name: str, default: float | None = None) -> str:
    if value is None or value == "":
        if default is None:
            raise ValueError(f"CoT needs `{name}`")
        value = default
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"`{name}` is not a number: {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"`{name}` is not a number: {value!r}")
    return repr(number)


@register_format("cot", config=CotOptions)
class CotCodec(Codec):
    """Cursor-on-Target events (XML, or TAK protocol v1 mesh / stream)."""

    name = "cot"
    content_type = "application/xml"
    options: CotOptions

    def __init__(self, options: CotOptions | None = None) -> None:
        super().__init__(options or CotOptions())
        self.readers = {key: Reader(Expr(source)) for key, source in self.options.set.items()}
        self.clock: Callable[[], float] = time.time

    # ---- decoding -------------------------------------------------------------------
    def decode(self, data: bytes, where: str = "") -> list[Record]:
        prefix = f"{where}: " if where else ""
        if data[:1] == b"\xbf":
            try:
                message = takproto.parse_proto(bytearray(data))
            except (ProtobufError, IndexError, ValueError, EOFError) as exc:
                return [Record(None, f"{prefix}invalid TAK protocol message: {exc}", where)]
            if message is None:
                return [Record(None, f"{prefix}invalid TAK protocol message", where)]
            kind = "mesh" if data[:3] == b"\xbf\x01\xbf" else "stream"
            return [self._from_proto(message, kind, where)]
        try:
            root = parse(data.strip())
        except ValueError as exc:
            return [Record(None, f"{prefix}{exc}", where)]
        if root.tag != "event":
            return [Record(None, f"{prefix}not a CoT event: <{root.tag}>", where)]
        event: dict[str, Any] = dict(root.attrib)
        event.pop("version", None)
        point = root.find("point")
        if point is not None:
            try:
                event["point"] = {k: float(v) for k, v in point.attrib.items()}
            except ValueError as exc:
                return [Record(None, f"{prefix}bad point: {exc}", where)]
        detail = root.find("detail")
        event["detail"] = (
            element_value(detail) if detail is not None and (len(detail) or detail.attrib) else {}
        )
        event["protocol"] = "xml"
        return [Record(event, None, where)]

    def _from_proto(self, message: Any, kind: str, where: str) -> Record:
        cot = message.cotEvent
        event: dict[str, Any] = {
            "uid": cot.uid,
            "type": cot.type,
            "how": cot.how,
            "time": cot_time(cot.sendTime / 1000),
            "start": cot_time(cot.startTime / 1000),
            "stale": cot_time(cot.staleTime / 1000),
            "point": {"lat": cot.lat, "lon": cot.lon, "hae": cot.hae, "ce": cot.ce, "le": cot.le},
            "protocol": kind,
        }
        detail: dict[str, Any] = {}
        if cot.detail.xmlDetail:
            try:
                inner = element_value(parse(f"<detail>{cot.detail.xmlDetail}</detail>".encode()))
            except ValueError as exc:
                return Record(None, f"{where + ': ' if where else ''}bad xmlDetail: {exc}", where)
            detail.update(inner if isinstance(inner, dict) else {})
        if cot.detail.HasField("contact"):
            detail["contact"] = {"@callsign": cot.detail.contact.callsign}
            if cot.detail.contact.endpoint:
                detail["contact"]["@endpoint"] = cot.detail.contact.endpoint
        if cot.detail.HasField("group"):
            detail["__group"] = {"@name": cot.detail.group.name, "@role": cot.detail.group.role}
        if cot.detail.HasField("track"):
            detail["track"] = {"@course": str(cot.detail.track.course), "@speed": str(cot.detail.track.speed)}
        event["detail"] = detail
        return Record(event, None, where)

    # ---- encoding -------------------------------------------------------------------
    def encode(self, msg: Message, payload_only: bool = False) -> bytes:
        xml = self.xml(msg)
        if self.options.protocol == "xml":
            return _DECLARATION + xml
        return bytes(takproto.xml2proto(xml, _PROTO[self.options.protocol]))

    def xml(self, msg: Message) -> bytes:
        """The `<event>` of one message, byte for byte what ElementTree writes for
        `element(msg)` (a property test holds them side by side), put together as text:
        every value escaped as ElementTree escapes it. A `detail` object from the
        mapping is built and written by ElementTree itself."""
        get, payload = self._getter(msg)
        head, point = self._head(get, payload)
        extra = get("detail", _detail_in(payload))
        if isinstance(extra, dict) and extra:
            detail = ET.Element("detail")
            build_into(detail, extra)
            self._detail(detail, get)
            if _namespaced(detail):  # ElementTree declares those prefixes on the root
                event = self._tree(head, point)
                event.append(detail)
                xml: bytes = ET.tostring(event, encoding="utf-8", xml_declaration=False)
                return xml
            body = ET.tostring(detail, encoding="unicode")
        else:
            body = _detail_text(get)
        text = f"<event{_attributes(head)}><point{_attributes(point)} />{body}</event>"
        return text.encode("utf-8", "xmlcharrefreplace")

    def element(self, msg: Message) -> ET.Element:
        """The `<event>` of one message as an ElementTree element (ValueError when it
        cannot be one)."""
        get, payload = self._getter(msg)
        event = self._tree(*self._head(get, payload))
        detail = ET.SubElement(event, "detail")
        extra = get("detail", _detail_in(payload))
        if isinstance(extra, dict) and extra:
            build_into(detail, extra)
        self._detail(detail, get)
        return event

    def _getter(self, msg: Message) -> tuple[Callable[..., Any], dict[str, Any]]:
        """`get(field, fallback)`: the field's mapping evaluated for the message, or
        the fallback when `set` does not name it; and the payload."""
        payload = msg.payload if isinstance(msg.payload, dict) else {}
        readers = self.readers
        if not readers:
            return (lambda key, fallback=None: fallback), payload
        light = light_context(msg)
        full = msg.to_context

        def get(key: str, fallback: Any = None) -> Any:
            reader = readers.get(key)
            if reader is not None:
                try:
                    return reader(light, full)
                except Exception as exc:  # noqa: BLE001  (CEL raises its own kinds)
                    raise ValueError(f"cot `{key}`: {exc}") from None
            return fallback

        return get, payload

    def _head(self, get: Callable[..., Any], payload: dict[str, Any]) -> tuple[Attributes, Attributes]:
        """The event's and the point's attributes, in the order they are written."""
        opts = self.options
        point: dict[str, Any] = payload["point"] if isinstance(payload.get("point"), dict) else {}
        uid = get("uid", payload.get("uid"))
        if not uid:
            raise ValueError("CoT needs a `uid`")
        now = self.clock()
        now_text: list[str] = []

        def stamp(value: Any) -> str:
            if value is now:  # `time` and `start` both now: one text
                if not now_text:
                    now_text.append(cot_time(now))
                return now_text[0]
            return cot_time(value)

        start = get("start", payload.get("start"))
        head = [
            ("version", "2.0"),
            ("uid", xml_text(str(uid))),
            ("type", xml_text(str(get("type", payload.get("type")) or opts.default_type))),
            ("how", xml_text(str(get("how", payload.get("how")) or opts.default_how))),
            ("time", stamp(get("time", payload.get("time")) or now)),
            ("start", stamp(start or now)),
            (
                "stale",
                cot_time(
                    get("stale", payload.get("stale"))
                    or (parse_timestamp(start) if isinstance(start, str) else float(start or now))
                    + opts.stale_seconds
                ),
            ),
        ]
        where = [
            ("lat", _number(get("lat", point.get("lat", payload.get("lat"))), "lat")),
            ("lon", _number(get("lon", point.get("lon", payload.get("lon"))), "lon")),
            ("hae", _number(get("hae", point.get("hae")), "hae", UNKNOWN)),
            ("ce", _number(get("ce", point.get("ce")), "ce", UNKNOWN)),
            ("le", _number(get("le", point.get("le")), "le", UNKNOWN)),
        ]
        return head, where

    @staticmethod
    def _tree(head: Attributes, point: Attributes) -> ET.Element:
        event = ET.Element("event", dict(head))
        ET.SubElement(event, "point", dict(point))
        return event

    @staticmethod
    def _detail(detail: ET.Element, get: Any) -> None:
        """The detail fields `set` names, over what the payload's detail holds."""

        def child(tag: str) -> ET.Element:
            found = detail.find(tag)
            return found if found is not None else ET.SubElement(detail, tag)

        callsign = get("callsign")
        if callsign is not None:
            child("contact").set("callsign", xml_text(str(callsign)))
        remarks = get("remarks")
        if remarks is not None:
            child("remarks").text = xml_text(str(remarks))
        color = get("color")
        if color is not None:
            child("color").set("argb", _argb(color))
        group_name, group_role = get("group_name"), get("group_role")
        if group_name is not None or group_role is not None:
            group = child("__group")
            group.set("name", xml_text(str(group_name or "Cyan")))
            group.set("role", xml_text(str(group_role or "Team Member")))
        course, speed = get("course"), get("speed")
        if course is not None or speed is not None:
            track = child("track")
            track.set("course", _number(course, "course", 0.0))
            track.set("speed", _number(speed, "speed", 0.0))


Attributes = list[tuple[str, str]]


def _detail_in(payload: dict[str, Any]) -> Any:
    return payload["detail"] if isinstance(payload.get("detail"), dict) else {}


def _detail_text(get: Callable[..., Any]) -> str:
    """`<detail>` as ElementTree writes what `CotCodec._detail` builds in an empty one."""
    parts = []
    callsign = get("callsign")
    if callsign is not None:
        parts.append(f'<contact callsign="{_attribute(xml_text(str(callsign)))}" />')
    remarks = get("remarks")
    if remarks is not None:
        text = xml_text(str(remarks))
        parts.append(f"<remarks>{_cdata(text)}</remarks>" if text else "<remarks />")
    color = get("color")
    if color is not None:
        parts.append(f'<color argb="{_argb(color)}" />')
    group_name, group_role = get("group_name"), get("group_role")
    if group_name is not None or group_role is not None:
        name = _attribute(xml_text(str(group_name or "Cyan")))
        role = _attribute(xml_text(str(group_role or "Team Member")))
        parts.append(f'<__group name="{name}" role="{role}" />')
    course, speed = get("course"), get("speed")
    if course is not None or speed is not None:
        course_text, speed_text = _number(course, "course", 0.0), _number(speed, "speed", 0.0)
        parts.append(f'<track course="{course_text}" speed="{speed_text}" />')
    return f"<detail>{''.join(parts)}</detail>" if parts else "<detail />"


def _argb(value: Any) -> str:
    try:
        return str(int(value))
    except OverflowError:
        raise ValueError(f"`color` is not an ARGB integer: {value!r}") from None


def _attributes(items: Attributes) -> str:
    return "".join(f' {name}="{_attribute(value)}"' for name, value in items)


def _attribute(text: str) -> str:
    """An attribute value escaped as ElementTree escapes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def _cdata(text: str) -> str:
    """Element text escaped as ElementTree escapes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _namespaced(element: ET.Element) -> bool:
    """Whether ElementTree would declare a namespace for a name in this tree."""
    return any(e.tag[:1] == "{" or any(k[:1] == "{" for k in e.attrib) for e in element.iter())
