"""OpenAPI 3.1 from the routes a process serves.

A route carries its description (`RouteDoc`): attach one with `document(route, doc)`
where the route is built, or `describe(routes, docs)` afterwards, matched by method
and path (for routes built by code that does not know about documentation). Bodies
are described by the msgspec types that check them (turned into JSON Schema by
`msgspec.json.schema_components`) or by a JSON Schema where a schema file is the
reference. `openapi_document(routes)` walks the routes actually mounted, so the
document lists exactly what the process answers; a route nobody described is
listed all the same, as undescribed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.routing import BaseRoute, Route

OPENAPI_VERSION = "3.1.0"
ATTRIBUTE = "openapi_docs"  # where `document` keeps a route's descriptions
REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")
# Starlette's path convertors, as JSON Schema
_CONVERTORS = {"int": {"type": "integer", "minimum": 0}, "float": {"type": "number", "minimum": 0}}
_HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "TRACE")


@dataclass(frozen=True)
class Body:
    """A request or response body: a msgspec type (a Struct, `list[Struct]`...) or a JSON
    Schema (a dict; it may `$ref` the `components` of its RouteDoc)."""

    schema: Any = None  # None: any JSON value
    media_type: str = "application/json"
    description: str = ""


@dataclass(frozen=True)
class Param:
    """A query, path or header parameter."""

    name: str
    location: str = "query"  # "query" | "path" | "header"
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class ApiKey:
    """Credentials in a request header (OpenAPI's apiKey scheme), optionally also as
    `Authorization: Bearer ...`."""

    header: str = "X-API-Key"
    bearer: bool = False


@dataclass(frozen=True)
class RouteDoc:
    """What one method of one route takes and answers.

    `responses` maps a status code to a description, or to a Body or several (one per
    media type; the first one's description is the response's); `path` is needed only
    to match routes in `describe`.
    """

    summary: str
    method: str = "GET"
    path: str = ""
    description: str = ""
    request: Sequence[Body] = ()
    responses: Mapping[int, str | Body | tuple[Body, ...]] = field(default_factory=lambda: {200: "OK"})
    parameters: Sequence[Param] = ()
    tags: Sequence[str] = ()
    auth: ApiKey | None = None
    components: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def document(route: BaseRoute, *docs: RouteDoc) -> BaseRoute:
    """Attach descriptions (one per method) to a route; returns the route."""
    setattr(route, ATTRIBUTE, (*getattr(route, ATTRIBUTE, ()), *docs))
    return route


def describe(routes: list[BaseRoute], docs: Iterable[RouteDoc]) -> list[BaseRoute]:
    """Attach each doc to the route of its method and path; returns the routes."""
    by_key = {(d.method.upper(), d.path): d for d in docs}
    for route in routes:
        path = str(getattr(route, "path", ""))
        for method in _methods(route):
            doc = by_key.get((method, path))
            if doc is not None:
                document(route, doc)
    return routes


def docs_of(route: BaseRoute) -> tuple[RouteDoc, ...]:
    return tuple(getattr(route, ATTRIBUTE, ()))


def _methods(route: BaseRoute) -> list[str]:
    if not isinstance(route, Route):
        return []  # WebSocket routes and mounts are not operations
    methods = route.methods or {"GET"}
    return [m for m in _HTTP_METHODS if m in methods]


class _Schemas:
    """Collects the msgspec types of every body, then resolves them in one pass
    (shared Structs become one component each)."""

    def __init__(self) -> None:
        self.types: list[Any] = []
        self.components: dict[str, Any] = {}

    def add(self, schema: Any) -> Any:
        """A placeholder to resolve later: an index into `types`, or the schema itself."""
        if schema is None:
            return {}
        if isinstance(schema, Mapping):
            return dict(schema)
        self.types.append(schema)
        return len(self.types) - 1

    def resolve(self, document: dict[str, Any]) -> None:
        schemas, components = msgspec.json.schema_components(self.types, ref_template=REF)
        for name, schema in components.items():
            self.components.setdefault(name, schema)

        def fill(node: Any) -> Any:
            if isinstance(node, dict):
                if "schema" in node and isinstance(node["schema"], int):
                    node["schema"] = schemas[node["schema"]]
                for value in node.values():
                    fill(value)
            elif isinstance(node, list):
                for value in node:
                    fill(value)
            return node

        fill(document["paths"])
        document["components"]["schemas"] = dict(sorted(self.components.items()))


def _content(body: Body, schemas: _Schemas) -> dict[str, Any]:
    return {body.media_type: {"schema": schemas.add(body.schema)}}


def _operation(doc: RouteDoc, path_params: list[tuple[str, str]], schemas: _Schemas) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": doc.summary}
    if doc.description:
        operation["description"] = doc.description
    if doc.tags:
        operation["tags"] = list(doc.tags)
    params = [
        {
            "name": p.name,
            "in": p.location,
            "required": p.required or p.location == "path",
            "schema": dict(p.schema),
            **({"description": p.description} if p.description else {}),
        }
        for p in doc.parameters
    ]
    given = {p.name for p in doc.parameters if p.location == "path"}
    params += [_path_param(name, convertor) for name, convertor in path_params if name not in given]
    if params:
        operation["parameters"] = params
    if doc.request:
        content: dict[str, Any] = {}
        for body in doc.request:
            content.update(_content(body, schemas))
        operation["requestBody"] = {"required": True, "content": content}
    responses: dict[str, Any] = {}
    for status, answer in sorted(doc.responses.items()):
        if isinstance(answer, str):
            responses[str(status)] = {"description": answer}
            continue
        bodies = (answer,) if isinstance(answer, Body) else tuple(answer)
        media: dict[str, Any] = {}
        for body in bodies:  # one status, several media types (csv or jsonl)
            media.update(_content(body, schemas))
        responses[str(status)] = {"description": bodies[0].description or "OK", "content": media}
    operation["responses"] = responses
    if doc.auth is not None:
        names = [_scheme_name(doc.auth.header)] + (["bearer"] if doc.auth.bearer else [])
        operation["security"] = [{name: []} for name in names]
    for name, schema in doc.components.items():
        schemas.components.setdefault(name, dict(schema))
    return operation


def _path_param(name: str, convertor: str) -> dict[str, Any]:
    schema = dict(_CONVERTORS.get(convertor, {"type": "string"}))
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _scheme_name(header: str) -> str:
    return "apiKey" if header.lower() == "x-api-key" else f"apiKey-{re.sub(r'[^A-Za-z0-9_-]', '_', header)}"


def openapi_document(
    routes: Iterable[BaseRoute],
    *,
    title: str = "wireway",
    version: str = "0",
    docs: Iterable[RouteDoc] = (),
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the mounted `routes` (`docs`: descriptions matched
    by method and path, for routes that carry none of their own)."""
    table = {(d.method.upper(), d.path): d for d in docs}
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    headers: dict[str, ApiKey] = {}
    for route in routes:
        raw_path = getattr(route, "path", "")
        path = _PARAM.sub(r"{\1}", raw_path)
        path_params = _PARAM.findall(raw_path)
        own = {d.method.upper(): d for d in docs_of(route)}
        for method in _methods(route):
            doc = own.get(method) or table.get((method, raw_path))
            if doc is None:
                doc = RouteDoc(f"{method} {path}", method, responses={200: "not described"})
            if doc.auth is not None:
                headers.setdefault(doc.auth.header, doc.auth)
            paths.setdefault(path, {})[method.lower()] = _operation(doc, path_params, schemas)
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {},
    }
    schemas.resolve(document)
    security: dict[str, Any] = {
        _scheme_name(header): {"type": "apiKey", "in": "header", "name": header} for header in headers
    }
    if any(auth.bearer for auth in headers.values()):
        security["bearer"] = {"type": "http", "scheme": "bearer"}
    if security:
        document["components"]["securitySchemes"] = security
    return document
