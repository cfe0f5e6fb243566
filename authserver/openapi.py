"""The OpenAPI 3.1 document served at /openapi.json, generated from the registered endpoints.

Paths, methods and path parameters come from the app's URL rules; bodies, answers, failures
and security from each view's `@endpoint` declaration and its pydantic models. Nothing here
describes an endpoint by hand, so the document cannot drift from what the server does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, Literal

from flask import Flask, current_app
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaValue, models_json_schema
from werkzeug.routing import Rule

from authserver.api.endpoint import ACCESS_TOKEN_HEADER, BEARER, Operation, operation_of
from authserver.errors import ErrorCode
from authserver.schemas.problems import Problem

REF_TEMPLATE = "#/components/schemas/{model}"
_CACHE_KEY = "authserver.openapi"
_PATH_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")

Mode = Literal["validation", "serialization"]

SECURITY_SCHEMES = {
    BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    ACCESS_TOKEN_HEADER: {"type": "apiKey", "in": "header", "name": "x-access-token",
                          "description": "The access token itself, without `Bearer`."},
}

_HEADER_DOCS = {
    "WWW-Authenticate": "`Bearer error=\"invalid_token\"`",
    "Retry-After": "Seconds to wait before trying again.",
}


def document(app: Flask | None = None) -> dict[str, Any]:
    """The document of `app` (default: the current one), built once per app."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    built: dict[str, Any] | None = app.extensions.get(_CACHE_KEY)
    if built is None:
        built = app.extensions[_CACHE_KEY] = build(app)
    return built


def _operations(app: Flask) -> Iterator[tuple[Rule, str, Operation]]:
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        operation = operation_of(view) if view is not None else None
        if operation is None:
            continue  # the HTML pages and static files: not part of the JSON API
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method.lower(), operation


def build(app: Flask) -> dict[str, Any]:
    found = list(_operations(app))
    wanted: dict[tuple[type[BaseModel], Mode], None] = {(Problem, "serialization"): None}
    for _, _, operation in found:
        if operation.request is not None:
            wanted[(operation.request, "validation")] = None
        if operation.response is not None:
            wanted[(operation.response, "serialization")] = None
    refs, definitions = models_json_schema(list(wanted), ref_template=REF_TEMPLATE)

    paths: dict[str, dict[str, Any]] = {}
    for rule, method, operation in found:
        path = _PATH_ARGUMENT.sub(r"{\1}", rule.rule)
        paths.setdefault(path, {})[method] = _operation(rule, operation, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "authserver", "version": "1",
                 "description": "Sign in with a password, an SMS code or an e-mailed link; "
                                "every method ends in the same token response. Every error "
                                "is an RFC 9457 problem with a stable `code`."},
        "paths": paths,
        "components": {
            "securitySchemes": SECURITY_SCHEMES,
            "schemas": definitions.get("$defs", {}),
        },
    }


def _operation(rule: Rule, operation: Operation,
               refs: dict[tuple[Any, Mode], JsonSchemaValue]) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": rule.endpoint, "summary": operation.summary,
                           "tags": [operation.tag]}
    if operation.description:
        doc["description"] = operation.description
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in _PATH_ARGUMENT.findall(rule.rule)]
    if operation.query is not None:
        parameters += _query_parameters(operation.query)
    if parameters:
        doc["parameters"] = parameters
    if operation.security:
        # Alternatives: any one of the schemes will do.
        doc["security"] = [{name: []} for name in operation.security]
    if operation.request is not None:
        doc["requestBody"] = {"required": not operation.body_optional,
                              "content": {"application/json": {
                                  "schema": refs[(operation.request, "validation")]}}}

    success: dict[str, Any] = {"description": HTTPStatus(operation.status).phrase}
    if operation.response is not None:
        success["content"] = {"application/json": {
            "schema": refs[(operation.response, "serialization")]}}
    if operation.headers:
        success["headers"] = {name: {"description": f"`{value}`", "schema": {"type": "string"}}
                              for name, value in operation.headers.items()}
    responses: dict[str, Any] = {str(operation.status): success}
    problem_ref = refs[(Problem, "serialization")]
    for status, codes in operation.problems().items():
        responses[str(status)] = _problem_response(status, codes, problem_ref)
    responses["default"] = {
        "description": "Any other failure: 405, 413, `internal_error` (500), "
                       "`service_unavailable` (503, a service the request needs is down).",
        "content": {"application/problem+json": {"schema": problem_ref}},
    }
    doc["responses"] = responses
    return doc


def _problem_response(status: int, codes: tuple[ErrorCode, ...],
                      problem_ref: JsonSchemaValue) -> dict[str, Any]:
    schema = {"allOf": [problem_ref, {"properties": {"code": {
        "enum": [code.value for code in codes]}}}]}
    response: dict[str, Any] = {
        "description": "; ".join(f"`{code.value}`: {code.label}" for code in codes),
        "content": {"application/problem+json": {"schema": schema}},
    }
    headers = []
    if ErrorCode.INVALID_TOKEN in codes:
        headers.append("WWW-Authenticate")
    if status in (429, 503):
        headers.append("Retry-After")
    if headers:
        response["headers"] = {name: {"description": _HEADER_DOCS[name],
                                      "schema": {"type": "string"}} for name in headers}
    return response


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        # A query parameter is absent or a string; "null" is not a thing it can be.
        options = [s for s in prop.get("anyOf", [prop]) if s.get("type") != "null"]
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                 "schema": {k: v for k, v in options[0].items()
                                            if k not in ("title", "description")}}
        if prop.get("description"):
            param["description"] = prop["description"]
        parameters.append(param)
    return parameters
