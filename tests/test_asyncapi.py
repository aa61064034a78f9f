"""`wireway docs --asyncapi FILE PATTERNS`: an AsyncAPI 3.0 document of the MQTT topics
and WebSocket messages of the patterns given."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from conftest import wireway
from wireway.apps import builtin_path
from wireway.config import load_pattern

SENSORS = builtin_path() / "sensors.yaml"
ENV = {"WIREWAY_MQTT_ENABLED": "true", "WIREWAY_MQTT_PREFIX": "plant", "WIREWAY_EVENTS_MQTT": "false"}


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), ref
        assert part in node, ref
        node = node[part]
    if isinstance(node, dict) and set(node) == {"$ref"}:  # a channel's message names a component
        return resolve(document, node["$ref"])
    return node


def check_shape(document: dict[str, Any]) -> None:
    """AsyncAPI 3.0 as the spec asks: refs resolve, parameters match the addresses,
    operations name a channel and messages of that channel, payloads are JSON Schemas."""
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"]
    assert document["info"]["version"]
    for ref in refs(document):
        resolve(document, ref)
    for name, channel in document["channels"].items():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", name), name
        placeholders = set(re.findall(r"\{([^}]+)\}", channel["address"]))
        assert placeholders == set(channel.get("parameters", {})), name
        for server in channel["servers"]:
            assert resolve(document, server["$ref"])["protocol"] in ("mqtt", "secure-mqtt", "ws")
    for operation in document["operations"].values():
        assert operation["action"] in ("send", "receive")
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel + "/messages/")
    for message in document["components"]["messages"].values():
        schema = {**message["payload"], "components": document["components"]}
        jsonschema.Draft202012Validator.check_schema(schema)


def generate(tmp_path: Path, *patterns: Path, name: str = "asyncapi.json") -> dict[str, Any]:
    out = tmp_path / name
    result = wireway("docs", "--asyncapi", str(out), *map(str, patterns), env=ENV)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    text = out.read_text()
    return yaml.safe_load(text) if name.endswith(".yaml") else json.loads(text)


def test_the_sensor_application_topics_and_websocket(tmp_path: Path) -> None:
    """The built-in sensors.yaml: every subscribed topic (wildcard levels as parameters,
    named by topic_fields), the alert topic template and the /ws pushes."""
    document = generate(tmp_path, SENSORS)
    check_shape(document)
    by_address: dict[str, list[dict[str, Any]]] = {}
    for operation in document["operations"].values():
        address = resolve(document, operation["channel"]["$ref"])["address"]
        by_address.setdefault(address, []).append(operation)

    pattern, errors = load_pattern(SENSORS, ENV)
    assert not errors
    assert pattern is not None
    (mqtt_input,) = [i for i in pattern.inputs if i.type == "mqtt"]
    assert mqtt_input.config.topics  # every filter is a channel wireway receives on
    for topic in mqtt_input.config.topics:
        address = topic.replace("+", "{device_id}")
        assert [o["action"] for o in by_address[address]] == ["receive"], address
    assert "plant/sensors/{device_id}/data" in by_address

    (alerts,) = by_address["plant/alerts/{device_id}"]
    assert alerts["action"] == "send"
    assert alerts["bindings"]["mqtt"]["qos"] == 1
    channel = resolve(document, alerts["channel"]["$ref"])
    assert "payload.device_id" in channel["parameters"]["device_id"]["description"]
    (message,) = [resolve(document, m["$ref"]) for m in channel["messages"].values()]
    assert 'messageType == "alert"' in message["description"]

    websocket = by_address["/ws"]
    assert {o["action"] for o in websocket} == {"send", "receive"}
    pushed = [resolve(document, m["$ref"]) for o in websocket if o["action"] == "send" for m in o["messages"]]
    assert pushed
    assert all(set(m["payload"]["required"]) == {"type", "data"} for m in pushed)
    server = resolve(document, resolve(document, websocket[0]["channel"]["$ref"])["servers"][0]["$ref"])
    assert server["protocol"] == "ws"


def test_a_pattern_of_ones_own_with_yaml_output(tmp_path: Path) -> None:
    """`#` becomes a parameter, a validate step's schema describes what is read, a whole
    envelope is described by the envelope's schema; a .yaml FILE is written as YAML."""
    (tmp_path / "schema.json").write_text(
        json.dumps({"type": "object", "required": ["t"], "properties": {"t": {"type": "number"}}})
    )
    pattern = tmp_path / "p.yaml"
    pattern.write_text("""
pattern: {name: climate}
interfaces:
  input:
    - {type: mqtt, url: "mqtts://broker.example:8883", topics: ["site/+/climate/#"], qos: 0}
  output:
    - {type: mqtt, url: "mqtt://127.0.0.1:1884", topic: "out/{source}/{payload.t}", payload_only: false}
processors:
  - validate: {schema: schema.json}
""")
    document = generate(tmp_path, pattern, name="asyncapi.yaml")
    check_shape(document)
    channels = {c["address"]: c for c in document["channels"].values()}
    assert set(channels) == {"site/{level1}/climate/{rest}", "out/{source}/{t}"}
    read = channels["site/{level1}/climate/{rest}"]
    (message,) = [resolve(document, m["$ref"]) for m in read["messages"].values()]
    assert message["payload"]["required"] == ["t"]
    servers = {s["host"]: s["protocol"] for s in document["servers"].values()}
    assert servers == {"broker.example:8883": "secure-mqtt", "127.0.0.1:1884": "mqtt"}
    written = channels["out/{source}/{t}"]
    (envelope,) = [resolve(document, m["$ref"]) for m in written["messages"].values()]
    assert envelope["payload"] == {"$ref": "#/components/schemas/Message"}
    assert "messageId" in document["components"]["schemas"]["Message"]["properties"]


def test_a_broken_pattern_is_reported_not_described(tmp_path: Path) -> None:
    """Errors as `wireway check` prints them, exit 1, no file written."""
    pattern = tmp_path / "p.yaml"
    pattern.write_text("pattern: {name: x}\ninterfaces:\n  input:\n    - {type: mqtt, topics: [a/#/b]}\n")
    out = tmp_path / "asyncapi.json"
    result = wireway("docs", "--asyncapi", str(out), str(pattern))
    assert result.returncode == 1
    assert "interfaces.input[0].topics[0]" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
