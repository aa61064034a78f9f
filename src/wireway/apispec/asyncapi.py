"""AsyncAPI 3.0 of a set of patterns: the MQTT topics they read and publish to, and the
messages their WebSocket outputs push (`wireway docs --asyncapi FILE PATTERNS`).

Operations are from wireway's side: `receive` on an mqtt input's topics and on what
WebSocket clients send, `send` for an mqtt output's topic and the WebSocket pushes.
Topic wildcards and `{payload.x}` placeholders become channel parameters (a `+`
level named by the input's `topic_fields` when one points at it). A payload is
described by the pattern's first `validate` step on payloads when it has one.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import msgspec

from wireway.config.model import Interface, Pattern
from wireway.envelope import Message

ASYNCAPI_VERSION = "3.0.0"
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_NAME = re.compile(r"[^A-Za-z0-9_-]+")
WEBSOCKET_CLIENT: dict[str, Any] = {
    "type": "object",
    "description": "what a client may send: subscribe (with filters: a field's value or values), "
    "unsubscribe (no messages until it subscribes again) or ping (answered pong)",
    "properties": {
        "type": {"type": "string", "enum": ["subscribe", "unsubscribe", "ping"]},
        "filters": {"type": "object"},
    },
    "required": ["type"],
}


def _name(*parts: str) -> str:
    return _NAME.sub("-", ".".join(p for p in parts if p)).strip("-") or "x"


class _Builder:
    def __init__(self) -> None:
        self.servers: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        envelope, components = msgspec.json.schema_components(
            [Message], ref_template="#/components/schemas/{name}"
        )
        self.schemas: dict[str, Any] = dict(components)
        self.envelope = envelope[0]

    def mqtt_server(self, url: str) -> str:
        parts = urlsplit(url)
        secure = parts.scheme == "mqtts"
        host = f"{parts.hostname or '127.0.0.1'}:{parts.port or (8883 if secure else 1883)}"
        name = _name("mqtt", host)
        self.servers[name] = {"host": host, "protocol": "secure-mqtt" if secure else "mqtt"}
        return name

    def websocket_server(self, port: int | None) -> str:
        if port is None:
            name = "http"
            self.servers[name] = {
                "host": "127.0.0.1:8080",
                "protocol": "ws",
                "description": "wireway's HTTP server (its address is `wireway run --http`)",
            }
        else:
            name = _name("websocket", str(port))
            self.servers[name] = {"host": f"127.0.0.1:{port}", "protocol": "ws"}
        return name

    def channel(
        self, name: str, address: str, server: str, parameters: dict[str, str], messages: dict[str, Any]
    ) -> str:
        channel: dict[str, Any] = {
            "address": address,
            "servers": [{"$ref": f"#/servers/{server}"}],
            "messages": {},
        }
        if parameters:
            channel["parameters"] = {p: {"description": text} for p, text in parameters.items()}
        for message_name, message in messages.items():
            self.messages[message_name] = message
            channel["messages"][message_name] = {"$ref": f"#/components/messages/{message_name}"}
        self.channels[name] = channel
        return name

    def operation(self, name: str, action: str, channel: str, summary: str, extra: dict[str, Any]) -> None:
        messages = [
            {"$ref": f"#/channels/{channel}/messages/{m}"} for m in self.channels[channel]["messages"]
        ]
        self.operations[name] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": summary,
            "messages": messages,
            **({"bindings": {"mqtt": extra}} if extra else {}),
        }


def _filter_address(topic: str, fields: dict[str, int]) -> tuple[str, dict[str, str]]:
    """'neurobuild/sensors/+/data' with {device_id: -2} -> 'neurobuild/sensors/{device_id}/data'."""
    levels = topic.split("/")
    named = {index % len(levels): key for key, index in fields.items()}
    parameters: dict[str, str] = {}
    for i, level in enumerate(levels):
        if level == "+":
            key = _name(named.get(i, f"level{i}"))
            levels[i] = "{" + key + "}"
            parameters[key] = f"topic level {i} (the `+` of `{topic}`)" + (
                f", read into payload.{named[i]}" if i in named else ""
            )
        elif level == "#":
            levels[i] = "{rest}"
            parameters["rest"] = f"the remaining levels (the `#` of `{topic}`)"
    return "/".join(levels), parameters


def _template_address(template: str) -> tuple[str, dict[str, str]]:
    """'neurobuild/alerts/{payload.device_id}' -> 'neurobuild/alerts/{device_id}'."""
    parameters: dict[str, str] = {}

    def sub(m: re.Match[str]) -> str:
        key = _name(m.group(1).rsplit(".", 1)[-1])
        while key in parameters and parameters[key] != m.group(1):
            key += "_"
        parameters[key] = m.group(1)
        return "{" + key + "}"

    address = _PLACEHOLDER.sub(sub, template)
    return address, {k: f"each message's `{path}`" for k, path in parameters.items()}


def _payload_schema(pattern: Pattern) -> dict[str, Any]:
    for step in pattern.steps:
        validator = getattr(step.instance, "validator", None)
        if step.kind == "validate" and not getattr(step.instance, "envelope", False) and validator:
            schema = dict(validator.schema)
            schema.pop("$schema", None)
            return schema
    return {"description": "any JSON value (the pattern checks no schema)"}


def _when(iface: Interface) -> str:
    return f" Sent for messages where `{iface.when.source}`." if iface.when is not None else ""


def _input(builder: _Builder, pattern: Pattern, iface: Interface) -> None:
    config = iface.config
    server = builder.mqtt_server(config.url)
    payload = _payload_schema(pattern)
    for topic in config.topics:
        address, parameters = _filter_address(topic, dict(getattr(config, "topic_fields", {}) or {}))
        name = _name(pattern.name, iface.name, address)
        message = {
            "name": _name(pattern.name, iface.name),
            "title": f"into pattern {pattern.name}",
            "contentType": "application/json",
            "payload": payload,
        }
        channel = builder.channel(name, address, server, parameters, {_name(name, "message"): message})
        group = getattr(config, "shared_group", None)
        summary = f"{pattern.name} reads `{topic}` (QoS {config.qos})" + (
            f", shared group `{group}`" if group else ""
        )
        builder.operation(_name(name, "receive"), "receive", channel, summary, {"qos": config.qos})


def _mqtt_output(builder: _Builder, pattern: Pattern, iface: Interface) -> None:
    config = iface.config
    server = builder.mqtt_server(config.url)
    address, parameters = _template_address(config.topic)
    name = _name(pattern.name, iface.name)
    whole = not getattr(config, "payload_only", True)
    message = {
        "name": name,
        "title": f"from pattern {pattern.name}, output {iface.name}",
        "contentType": "application/json",
        "payload": builder.envelope if whole else {"description": "the message's payload"},
        "description": ("The whole envelope." if whole else "The message's payload.") + _when(iface),
    }
    channel = builder.channel(name, address, server, parameters, {_name(name, "message"): message})
    extra = {"qos": config.qos, "retain": bool(getattr(config, "retain", False))}
    summary = f"{pattern.name} publishes to `{config.topic}` (QoS {config.qos})"
    builder.operation(_name(name, "send"), "send", channel, summary, extra)


def _websocket_output(builder: _Builder, pattern: Pattern, iface: Interface) -> None:
    config = iface.config
    data = builder.envelope if not getattr(config, "payload_only", True) else {"description": "the payload"}
    kind = getattr(config, "kind", None)
    pushed = {
        "type": "object",
        "properties": {
            "type": {"const": kind} if kind else {"type": "string", "description": "the messageType"},
            "data": data,
            "timestamp": {"type": "string", "format": "date-time"},
        },
        "required": ["type", "data"],
    }
    ports = [None] + ([config.port] if getattr(config, "port", None) else [])
    for port in ports:
        server = builder.websocket_server(port)
        key = _name("ws", config.path, str(port or "http"))
        if key not in builder.channels:
            client = {"name": "client", "title": "from a client", "payload": WEBSOCKET_CLIENT}
            builder.channel(key, config.path, server, {}, {_name(key, "client"): client})
            builder.operation(_name(key, "receive"), "receive", key, f"clients of {config.path} write", {})
        name = _name(pattern.name, iface.name)
        message = {
            "name": name,
            "title": f"from pattern {pattern.name}, output {iface.name}",
            "contentType": "application/json",
            "payload": pushed,
            "description": f"Pushed to every client of {config.path} (best effort).{_when(iface)}",
        }
        message_name = _name(name, "message")
        builder.messages[message_name] = message
        builder.channels[key]["messages"][message_name] = {"$ref": f"#/components/messages/{message_name}"}
        ref = {"$ref": f"#/channels/{key}/messages/{message_name}"}
        builder.operations[_name(name, str(port or "http"), "send")] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"{pattern.name} pushes `{kind or 'messageType'}` messages on {config.path}",
            "messages": [ref],
        }


def asyncapi_document(
    patterns: list[Pattern], *, title: str = "wireway", version: str = "0"
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the patterns' MQTT topics and WebSocket messages."""
    builder = _Builder()
    for pattern in patterns:
        for iface in pattern.inputs:
            if iface.type == "mqtt":
                _input(builder, pattern, iface)
        for iface in pattern.outputs:
            if iface.type == "mqtt":
                _mqtt_output(builder, pattern, iface)
            elif iface.type == "websocket":
                _websocket_output(builder, pattern, iface)
    names = ", ".join(p.name for p in patterns)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": f"MQTT topics and WebSocket messages of the patterns {names}.",
        },
        "defaultContentType": "application/json",
        "servers": builder.servers,
        "channels": builder.channels,
        "operations": builder.operations,
        "components": {"messages": builder.messages, "schemas": builder.schemas},
    }


def asyncapi_text(patterns: list[Pattern], *, yaml: bool = False) -> str:
    """The document as JSON, or as YAML (`yaml=True`)."""
    from wireway import __version__

    document = asyncapi_document(patterns, version=__version__)
    if yaml:
        import yaml as pyyaml

        return str(pyyaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return json.dumps(document, indent=2) + "\n"
