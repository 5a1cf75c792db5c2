"""The OpenAPI document, completed with what every operation can answer.

FastAPI documents only what a route declares (and a 422 as ``application/json``). Here every
error response is described as RFC 9457 problem details (``application/problem+json``, the
``Problem`` schema), operations with a body also document 400 (a body that is not JSON) and
413 (too large), authenticated operations 401 and 429, and every operation 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["PROBLEM_SCHEMA", "Responses", "install_openapi", "problem"]

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `code` is stable and machine-readable.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
    "example": {
        "type": "https://mpt.example/problems/not_found", "title": "Not found", "status": 404,
        "detail": "practice session 01a2... does not exist", "code": "not_found",
        "instance": "/api/v1/sessions/01a2...",
    },
}
#: The ``responses=`` of a route: status code -> OpenAPI response object.
Responses = dict[int | str, dict[str, Any]]


def problem(description: str) -> dict[str, Any]:
    """An error response of a route, documented as problem details."""
    return {"description": description, "content": dict(_PROBLEM_CONTENT)}


_PROBLEM_CONTENT = {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
}
_DEFAULT_DESCRIPTIONS = {
    "400": "The body is not valid JSON, or a header is malformed",
    "401": "No valid access token",
    "413": "The body is larger than the limit",
    "422": "The request is invalid",
    "429": "Too many requests; see `Retry-After`",
    "500": "An unexpected error (logged)",
}
_METHODS = {"get", "put", "post", "delete", "patch"}


def _complete(schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    schemas = schema["components"]["schemas"]
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            extra = ["500"]
            if "requestBody" in operation:
                extra += ["400", "413", "422"]
            if operation.get("security"):
                extra += ["401", "429"]
            if operation.get("parameters"):
                extra.append("422")
            for code in extra:
                responses.setdefault(code, {"description": _DEFAULT_DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = dict(_PROBLEM_CONTENT)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _complete(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes, tags=app.openapi_tags, servers=app.servers,
            ))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
