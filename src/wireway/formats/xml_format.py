"""`xml`: one XML document per unit, as an object (attributes `@name`, text `#text`).

Parsing goes through defusedxml: a document that declares entities or refers to
external ones is refused (no "billion laughs", no reading local files), a
malformed one goes to the DLQ with the parser's reason. Writing builds the tree with
ElementTree, so every value is escaped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import msgspec
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from wireway.envelope import Message
from wireway.formats.codec import Codec, Record
from wireway.registry import register_format

_NAME = re.compile(r"^[A-Za-z_][\w.-]*(:[A-Za-z_][\w.-]*)?$")


class XmlOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Options of the `xml` format.

    A document becomes `{root_tag: value}`: an element with neither attributes nor
    children is its text; otherwise an object with `@attribute` keys, one key per
    child tag (a list when the tag repeats) and `#text` for its own text. Writing
    takes the same shape; a payload that is not a one-key object is written under
    `root`.
    """

    root: str = "message"

    def __post_init__(self) -> None:
        if not _NAME.match(self.root):
            raise ValueError("expected an XML element name - at `$.root`")


def parse(data: bytes) -> ET.Element:
    """The root element of a document; ValueError for a malformed one, or one that
    declares or refers to entities."""
    try:
        root: ET.Element = fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ValueError(f"refused XML: {type(exc).__name__}") from None
    except ET.ParseError as exc:
        raise ValueError(f"invalid XML: {exc}") from None
    return root


def element_value(elem: ET.Element) -> Any:
    """An element as a value: its text, or an object of `@attributes`, child tags and `#text`."""
    children = list(elem)
    # mixed content: the text after each child (its tail) is the parent's text too
    text = " ".join(t for t in [(elem.text or "").strip(), *((c.tail or "").strip() for c in children)] if t)
    if not children and not elem.attrib:
        return text
    out: dict[str, Any] = {f"@{k}": v for k, v in elem.attrib.items()}
    for child in children:
        value = element_value(child)
        if child.tag in out:
            held = out[child.tag]
            if isinstance(held, list):
                held.append(value)
            else:
                out[child.tag] = [held, value]
        else:
            out[child.tag] = value
    if text:
        out["#text"] = text
    return out


def build_into(parent: ET.Element, value: Any) -> None:
    """Write a value of the shape `element_value` gives into `parent` (escaped by
    ElementTree; a name XML does not allow raises ValueError)."""
    if isinstance(value, dict):
        for key, item in value.items():
            key = str(key)
            if key.startswith("@"):
                parent.set(key[1:], _text(item))
            elif key == "#text":
                parent.text = _text(item)
            else:
                for one in item if isinstance(item, list) else [item]:
                    build_into(ET.SubElement(parent, element_name(key)), one)
    elif value is not None:
        parent.text = _text(value)


def element_name(name: object) -> str:
    """An element name as XML allows it (ElementTree would write any text)."""
    text = str(name)
    if not _NAME.match(text) or text.lower().startswith("xml"):
        raise ValueError(f"cannot write as XML: `{text}` is not an element name")
    return text


# characters XML 1.0 cannot carry (most C0 controls, lone surrogates, U+FFFE/U+FFFF)
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` with what XML cannot carry replaced by U+FFFD (a control byte in an SSID
    must not cost the whole event)."""
    return _NOT_XML.sub("\ufffd", text)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return xml_text(str(value))
    return xml_text(msgspec.json.encode(value).decode())


@register_format("xml", config=XmlOptions)
class XmlCodec(Codec):
    """One XML document per unit, as an object."""

    name = "xml"
    content_type = "application/xml"
    options: XmlOptions

    def __init__(self, options: XmlOptions | None = None) -> None:
        super().__init__(options or XmlOptions())

    def decode(self, data: bytes, where: str = "") -> list[Record]:
        try:
            root = parse(data)
        except ValueError as exc:
            return [Record(None, f"{where}: {exc}" if where else str(exc), where)]
        return [Record({root.tag: element_value(root)}, None, where)]

    def encode(self, msg: Message, payload_only: bool = False) -> bytes:
        payload = msg.payload
        if isinstance(payload, dict) and len(payload) == 1:
            ((tag, value),) = payload.items()
        else:
            tag, value = self.options.root, payload
        root = ET.Element(element_name(tag))
        build_into(root, value)
        data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
        return data
