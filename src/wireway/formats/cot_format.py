"""`cot`: Cursor-on-Target events, as XML or TAK protocol version 1.

A little over 400 lines: the encoder writes events as text byte for byte as the
ElementTree builder would (its property tests compare the two), and both live here
so that the comparison stays next to what it checks.

Decoding reads XML through defusedxml and TAK protocol v1 (mesh: `0xbf 0x01 0xbf`
then a protobuf; stream: `0xbf`, a varint length, a protobuf) through takproto, into
one shape: `{uid, type, how, time, start, stale, point: {lat, lon, hae, ce, le},
detail: {...}, protocol}` with `detail` as the `xml` format reads elements (attributes
`@name`). Encoding takes the same shape from the payload, any field replaced by a CEL
expression of the message (`set:`), and builds the XML with ElementTree, so every
value is escaped.
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from wireway.envelope import Message, parse_timestamp
from wireway.expr import Expr, ExpressionError
from wireway.expr_fast import NOT_PLAIN, Reader, light_context
from wireway.formats.codec import Codec, Record
from wireway.formats.xml_format import build_into, element_value, parse, xml_text
from wireway.registry import register_format

UNKNOWN = 9999999.0  # CoT's "not known" for hae, ce and le
FIELDS = (
    "uid", "type", "how", "time", "start", "stale", "lat", "lon", "hae", "ce", "le",
    "callsign", "remarks", "color", "group_name", "group_role", "course", "speed", "detail",
)  # fmt: skip
_FROM_PAYLOAD = ("uid", "type", "how", "time", "start", "stale", "lat", "lon", "hae", "ce", "le", "detail")
_POINT = frozenset(("lat", "lon", "hae", "ce", "le"))  # read from the payload's `point`
_EITHER = frozenset(("lat", "lon"))  # or from the payload itself
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


def _takproto() -> tuple[Any, type[Exception]]:
    """takproto and protobuf's decode error, imported when TAK protocol v1 is used
    (protobuf is a few megabytes resident that XML alone does not need)."""
    import takproto
    from google.protobuf.message import DecodeError

    return takproto, DecodeError


def cot_time(value: Any) -> str:
    """A CoT timestamp: UTC, milliseconds, `Z`."""
    seconds = parse_timestamp(value) if isinstance(value, str) else float(value)
    if 0 <= seconds < _YEAR_10000:
        return _utc_ms(seconds)
    try:
        stamp = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError):
        raise ValueError(f"not a time CoT can carry: {value!r}") from None
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_YEAR_10000 = 253402300800.0
_SECONDS: dict[int, str] = {}  # whole second -> its text: events of one second share it
SECONDS_KEPT = 1024


def _utc_ms(seconds: float) -> str:
    """What `datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")`
    writes (with `Z`), for a time from 1970 to 9999: the microseconds rounded half to
    even as CPython rounds them, the milliseconds cut from those."""
    fraction, whole = math.modf(seconds)
    micro = round(fraction * 1e6)
    second = int(whole)
    if micro >= 1_000_000:
        micro -= 1_000_000
        second += 1
    text = _SECONDS.get(second)
    if text is None:
        if len(_SECONDS) >= SECONDS_KEPT:
            _SECONDS.clear()
        text = _SECONDS[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{text}.{micro // 1000:03d}Z"


def _number(value: Any, name: str, default: float | None = None) -> str:
    if type(value) is float and math.isfinite(value):  # the usual: nothing to convert
        return repr(value)
    if value is None or value == "":
        if default is None:
            raise ValueError(f"CoT needs `{name}`")
        value = default
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"`{name}` is not a number: {value!r}") from None
    if not math.isfinite(number):
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
        # the fields the payload gives when `set` does not map them (see _getter)
        self.unmapped = [key for key in _FROM_PAYLOAD if key not in self.readers]
        self.clock: Callable[[], float] = time.time

    # ---- decoding -------------------------------------------------------------------
    def decode(self, data: bytes, where: str = "") -> list[Record]:
        prefix = f"{where}: " if where else ""
        if data[:1] == b"\xbf":
            try:
                takproto, protobuf_error = _takproto()
                message = takproto.parse_proto(bytearray(data))
            except (protobuf_error, IndexError, ValueError, EOFError) as exc:
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
        takproto, _ = _takproto()
        versions = takproto.TAKProtoVer
        version = versions.MESH if self.options.protocol == "mesh" else versions.STREAM
        return bytes(takproto.xml2proto(xml, version))

    def xml(self, msg: Message) -> bytes:
        """The `<event>` of one message, byte for byte what ElementTree writes for
        `element(msg)` (a property test holds them side by side), put together as text:
        every value escaped as ElementTree escapes it (times and numbers have nothing
        to escape). A `detail` object from the mapping is built and written by
        ElementTree itself."""
        get, payload = self._getter(msg)
        (uid, kind, how, at, start, stale), (lat, lon, hae, ce, le) = self._head(get, payload)
        extra = get("detail")
        if isinstance(extra, dict) and extra:
            detail = ET.Element("detail")
            build_into(detail, extra)
            self._detail(detail, get)
            if _namespaced(detail):  # ElementTree declares those prefixes on the root
                event = self._tree(*self._head(get, payload))
                event.append(detail)
                xml: bytes = ET.tostring(event, encoding="utf-8", xml_declaration=False)
                return xml
            body = ET.tostring(detail, encoding="unicode")
        else:
            body = _detail_text(get)
        text = (
            f'<event version="2.0" uid="{_attribute(uid)}" type="{_attribute(kind)}" '
            f'how="{_attribute(how)}" time="{at}" start="{start}" stale="{stale}">'
            f'<point lat="{lat}" lon="{lon}" hae="{hae}" ce="{ce}" le="{le}" />{body}</event>'
        )
        return text.encode("utf-8", "xmlcharrefreplace")

    def element(self, msg: Message) -> ET.Element:
        """The `<event>` of one message as an ElementTree element (ValueError when it
        cannot be one)."""
        get, payload = self._getter(msg)
        event = self._tree(*self._head(get, payload))
        detail = ET.SubElement(event, "detail")
        extra = get("detail")
        if isinstance(extra, dict) and extra:
            build_into(detail, extra)
        self._detail(detail, get)
        return event

    def _getter(self, msg: Message) -> tuple[Callable[..., Any], dict[str, Any]]:
        """`get(field)`: the field's value for the message, the mapping's when `set`
        names it (a ValueError when it failed), else what the payload holds for it
        (`uid`, `type`, ... at its top, `lat` and `lon` in its `point` or at its top,
        `hae`, `ce` and `le` in its `point`, its `detail` object); and the payload. The
        mappings are evaluated at once (they change nothing, so when does not
        matter); an error is raised where the field is asked for."""
        payload = msg.payload if isinstance(msg.payload, dict) else {}
        values: dict[str, Any] = {}
        if self.readers:
            light = light_context(msg)
            for key, reader in self.readers.items():
                value = reader.plain(light)
                if value is NOT_PLAIN:
                    try:
                        value = reader.expr.evaluate(msg.to_context())
                    except Exception as exc:  # noqa: BLE001  (CEL raises its own kinds)
                        value = _Failure(f"cot `{key}`: {exc}")
                values[key] = value
        point: dict[str, Any] = payload["point"] if isinstance(payload.get("point"), dict) else {}
        for key in self.unmapped:
            if key in _POINT:
                values[key] = point.get(key, payload.get(key)) if key in _EITHER else point.get(key)
            elif key == "detail":
                values[key] = _detail_in(payload)
            else:
                values[key] = payload.get(key)

        def get(key: str, fallback: Any = None) -> Any:
            value = values.get(key, fallback)
            if type(value) is _Failure:
                raise ValueError(value.reason)
            return value

        return get, payload

    def _head(self, get: Callable[..., Any], payload: dict[str, Any]) -> tuple[Head, Point]:
        """The event's attributes after `version` (uid, type, how, time, start, stale)
        and the point's (lat, lon, hae, ce, le), as text, in the order they are written."""
        opts = self.options
        uid = get("uid")
        if not uid:
            raise ValueError("CoT needs a `uid`")
        now = self.clock()
        start = get("start")
        uid_text = _clean(str(uid))
        kind = _clean(str(get("type") or opts.default_type))
        how = _clean(str(get("how") or opts.default_how))
        at = get("time") or now
        at_text = cot_time(at)
        start_text = at_text if (start or now) is now and at is now else cot_time(start or now)
        stale = cot_time(
            get("stale")
            or (parse_timestamp(start) if isinstance(start, str) else float(start or now))
            + opts.stale_seconds
        )
        head = (uid_text, kind, how, at_text, start_text, stale)
        where = (
            _number(get("lat"), "lat"),
            _number(get("lon"), "lon"),
            _number(get("hae"), "hae", UNKNOWN),
            _number(get("ce"), "ce", UNKNOWN),
            _number(get("le"), "le", UNKNOWN),
        )
        return head, where

    @staticmethod
    def _tree(head: Head, point: Point) -> ET.Element:
        names = ("uid", "type", "how", "time", "start", "stale")
        event = ET.Element("event", {"version": "2.0", **dict(zip(names, head, strict=True))})
        ET.SubElement(event, "point", dict(zip(("lat", "lon", "hae", "ce", "le"), point, strict=True)))
        return event

    @staticmethod
    def _detail(detail: ET.Element, get: Any) -> None:
        """The detail fields `set` names, over what the payload's detail holds."""

        def child(tag: str) -> ET.Element:
            found = detail.find(tag)
            return found if found is not None else ET.SubElement(detail, tag)

        callsign = get("callsign")
        if callsign is not None:
            child("contact").set("callsign", _clean(str(callsign)))
        remarks = get("remarks")
        if remarks is not None:
            child("remarks").text = _clean(str(remarks))
        color = get("color")
        if color is not None:
            child("color").set("argb", _argb(color))
        group_name, group_role = get("group_name"), get("group_role")
        if group_name is not None or group_role is not None:
            group = child("__group")
            group.set("name", _clean(str(group_name or "Cyan")))
            group.set("role", _clean(str(group_role or "Team Member")))
        course, speed = get("course"), get("speed")
        if course is not None or speed is not None:
            track = child("track")
            track.set("course", _number(course, "course", 0.0))
            track.set("speed", _number(speed, "speed", 0.0))


Head = tuple[str, str, str, str, str, str]
Point = tuple[str, str, str, str, str]


class _Failure:
    """A mapping that could not be evaluated, raised when its field is asked for."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _detail_in(payload: dict[str, Any]) -> Any:
    return payload["detail"] if isinstance(payload.get("detail"), dict) else {}


def _detail_text(get: Callable[..., Any]) -> str:
    """`<detail>` as ElementTree writes what `CotCodec._detail` builds in an empty one."""
    parts = []
    callsign = get("callsign")
    if callsign is not None:
        parts.append(f'<contact callsign="{_attribute(_clean(str(callsign)))}" />')
    remarks = get("remarks")
    if remarks is not None:
        text = _clean(str(remarks))
        parts.append(f"<remarks>{_cdata(text)}</remarks>" if text else "<remarks />")
    color = get("color")
    if color is not None:
        parts.append(f'<color argb="{_argb(color)}" />')
    group_name, group_role = get("group_name"), get("group_role")
    if group_name is not None or group_role is not None:
        name = _attribute(_clean(str(group_name or "Cyan")))
        role = _attribute(_clean(str(group_role or "Team Member")))
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


def _clean(text: str) -> str:
    """`xml_text`: printable ASCII has nothing XML cannot carry."""
    return text if text.isascii() and text.isprintable() else xml_text(text)


def _cdata(text: str) -> str:
    """Element text escaped as ElementTree escapes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _attribute(text: str) -> str:
    """An attribute value escaped as ElementTree escapes it: as element text, and
    quotes and whitespace characters too."""
    text = _cdata(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def _namespaced(element: ET.Element) -> bool:
    """Whether ElementTree would declare a namespace for a name in this tree."""
    return any(e.tag[:1] == "{" or any(k[:1] == "{" for k in e.attrib) for e in element.iter())
