"""GET /openapi.json: an OpenAPI 3.1 document of every HTTP route the process serves,
whose schemas resolve and describe what the routes really take and answer."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import msgspec
from starlette.routing import Route

from conftest import DATA, free_port
from wireway.apps import builtin_path
from wireway.config import load_pattern
from wireway.runtime.engine import Engine

ADMIN = "openapi-admin-key"
SAMPLES: dict[str, Any] = json.loads((DATA / "neurobuild_sensor_payloads.json").read_text())
ORDERS = """
pattern: {name: orders}
interfaces:
  input:
    - {type: http, address: /orders}
  output:
    - {type: file, address: "${OUT_FILE}"}
security: {authentication: api_key, api_keys: [orders-key]}
settings: {buffer: memory}
"""


@asynccontextmanager
async def engine_with_app(tmp: Path) -> AsyncIterator[Engine]:
    """The built-in sensor application beside a plain `http` input pattern."""
    settings = {
        "WIREWAY_DATA_DIR": str(tmp / "data"),
        "WIREWAY_ADMIN_KEY": ADMIN,
        "WIREWAY_MQTT_ENABLED": "false",
        "WIREWAY_STORAGE": f"sqlite:///{tmp}/data/wireway.db",
        "OUT_FILE": str(tmp / "out.jsonl"),  # never the working directory
    }
    old = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        (tmp / "sensors.yaml").write_text((builtin_path() / "sensors.yaml").read_text())
        (tmp / "orders.yaml").write_text(ORDERS)
        patterns = []
        for name in ("sensors.yaml", "orders.yaml"):
            pattern, errors = load_pattern(tmp / name)
            assert not errors, [str(e) for e in errors]
            assert pattern is not None
            patterns.append(pattern)
        engine = Engine(patterns, data_dir=tmp / "data", http=("127.0.0.1", free_port()))
        await engine.start()
        try:
            yield engine
        finally:
            await engine.shutdown()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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


class Checker:
    """Checks real answers and request bodies against the document's schemas."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.checked: set[tuple[str, str, int]] = set()

    def validator(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        # the components beside the schema, so `#/components/schemas/...` resolves in it
        return jsonschema.Draft202012Validator({**schema, "components": self.document["components"]})

    def answer(self, method: str, path: str, response: httpx.Response) -> Any:
        operation = self.document["paths"][path][method]
        entry = operation["responses"].get(str(response.status_code))
        assert entry is not None, f"{method} {path} answered {response.status_code}, not described"
        media = response.headers["content-type"].split(";")[0]
        schema = entry["content"][media]["schema"]
        body = response.json()
        errors = [e.message for e in self.validator(schema).iter_errors(body)]
        assert not errors, (method, path, response.status_code, errors, body)
        self.checked.add((method, path, response.status_code))
        return body

    def request(self, method: str, path: str, body: Any) -> list[str]:
        schema = self.document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        return [e.message for e in self.validator(schema).iter_errors(body)]


async def test_openapi_describes_every_route_and_the_real_answers(tmp_path: Path) -> None:
    """Every mounted HTTP route, of the engine and of the sensor application, is in the
    document; every `$ref` resolves; each component is a valid JSON Schema; and the
    real answers of the routes (and the sample readings) match their schemas."""
    async with engine_with_app(tmp_path) as engine:
        host, port = engine.http
        admin = {"X-API-Key": ADMIN}
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", trust_env=False) as c:
            answer = await c.get("/openapi.json")
            assert answer.status_code == 200
            document = answer.json()
            assert document["openapi"] == "3.1.0"
            assert document["info"]["title"] == "wireway"

            served = {("get", p) for p in ("/health", "/ready", "/status", "/metrics", "/openapi.json")}
            for route in engine.routes:
                if isinstance(route, Route):
                    served |= {(m.lower(), route.path) for m in route.methods or ()} - {("head", route.path)}
            described = {(m, p) for p, operations in document["paths"].items() for m in operations}
            assert described == served
            assert ("post", "/orders") in described
            assert ("post", "/api/v1/sensor-data/batch") in described
            assert ("delete", "/api/v1/devices/{device_id}") in described
            for path, operations in document["paths"].items():
                for method, operation in operations.items():
                    assert operation["summary"], (method, path)
                    assert "not described" not in str(operation["responses"]), (method, path)

            components = document["components"]["schemas"]
            for ref in set(refs(document)):
                assert ref.startswith("#/components/schemas/"), ref
                assert ref.rsplit("/", 1)[1] in components, ref
            for schema in components.values():
                jsonschema.Draft202012Validator.check_schema(schema)
            schemes = document["components"]["securitySchemes"]
            assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}

            check = Checker(document)
            assert not check.request("post", "/api/v1/sensor-data", SAMPLES["valid_all_sensors"])
            assert check.request("post", "/api/v1/sensor-data", SAMPLES["invalid_missing_device_id"])
            assert not check.request("post", "/api/v1/sensor-data/batch", [SAMPLES["valid_ld2410_only"]])
            assert check.request("post", "/api/v1/sensor-data/batch", [])

            for path in ("/health", "/ready", "/status"):
                check.answer("get", path, await c.get(path))
            check.answer("post", "/orders", await c.post("/orders", json={"n": 1}))
            check.answer(
                "post", "/orders", await c.post("/orders", json=[{"n": 1}], headers={"X-API-Key": "x"})
            )
            orders = {"X-API-Key": "orders-key"}
            check.answer("post", "/orders", await c.post("/orders", json={"n": 1}, headers=orders))
            check.answer("post", "/orders", await c.post("/orders", content=b"{", headers=orders))

            reading = SAMPLES["valid_all_sensors"]
            sensor = "/api/v1/sensor-data"
            check.answer("post", sensor, await c.post(sensor, json=reading, headers=admin))
            check.answer("post", sensor, await c.post(sensor, json=reading, headers=admin))  # duplicate
            bad = SAMPLES["invalid_timestamp"]
            check.answer("post", sensor, await c.post(sensor, json=bad, headers=admin))
            check.answer("post", sensor, await c.post(sensor, json=reading))
            batch = [SAMPLES["valid_ld2410_only"], bad, SAMPLES["valid_ld2410_only"]]
            check.answer(
                "post", sensor + "/batch", await c.post(sensor + "/batch", json=batch, headers=admin)
            )

            device = reading["device_id"]
            metadata = {"device_id": device, "metadata": {"location": "hall"}}
            assert not check.request("post", "/api/v1/devices/metadata", metadata)
            answer = await c.post("/api/v1/devices/metadata", json=metadata, headers=admin)
            check.answer("post", "/api/v1/devices/metadata", answer)

            async def stored() -> bool:
                page = await c.get("/api/v1/readings", headers=admin)
                devices = await c.get("/api/v1/devices", headers=admin)
                return bool(page.json()["count"]) and bool(devices.json()["count"])

            for _ in range(200):  # bounded: about 10 s
                if await stored():
                    break
                await asyncio.sleep(0.05)
            for path in ("/api/v1/queue/status", "/api/v1/devices", "/api/v1/occupancy", "/api/v1/alerts"):
                check.answer("get", path, await c.get(path, headers=admin))
            check.answer("get", "/api/v1/readings", await c.get("/api/v1/readings?limit=1", headers=admin))
            check.answer("get", "/api/v1/readings", await c.get("/api/v1/readings?limit=0", headers=admin))
            one = "/api/v1/devices/{device_id}"
            check.answer("get", one, await c.get(f"/api/v1/devices/{device}", headers=admin))
            check.answer("get", one, await c.get("/api/v1/devices/nobody", headers=admin))
            check.answer("delete", one, await c.delete(f"/api/v1/devices/{device}", headers=admin))
            alert = "/api/v1/alerts/{alert_id}/{action}"
            check.answer("post", alert, await c.post("/api/v1/alerts/nope/ack", headers=admin))
    assert len(check.checked) >= 20, sorted(check.checked)


def test_routes_without_a_description_are_listed_and_path_parameters_found() -> None:
    """The generic mechanism on its own: a described route, one matched by method and
    path, one nobody described (listed all the same), and `{id:int}` as a parameter."""
    from wireway.apispec.openapi import Body, RouteDoc, describe, document, openapi_document

    async def endpoint(request: Any) -> None:
        return None

    class Item(msgspec.Struct):
        id: int
        name: str

    routes = describe(
        [
            document(
                Route("/items", endpoint, methods=["POST"]), RouteDoc("Add", "POST", request=(Body(Item),))
            ),
            Route("/items/{id:int}", endpoint, methods=["GET", "DELETE"]),
            Route("/plain", endpoint),
        ],
        [RouteDoc("One item", "GET", "/items/{id:int}", responses={200: Body(Item), 404: "no such item"})],
    )
    document_ = openapi_document(routes, title="t", version="1")
    assert set(document_["paths"]) == {"/items", "/items/{id}", "/plain"}
    added = document_["paths"]["/items"]["post"]
    assert added["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Item"
    }
    one = document_["paths"]["/items/{id}"]["get"]
    assert one["summary"] == "One item"
    assert one["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    ]
    assert one["responses"]["404"] == {"description": "no such item"}
    gone = document_["paths"]["/items/{id}"]["delete"]
    assert gone["responses"] == {"200": {"description": "not described"}}
    assert set(document_["paths"]["/plain"]) == {"get"}
    assert document_["components"]["schemas"]["Item"]["required"] == ["id", "name"]
