"""Errors raised by the API's domains, and their translation into RFC 9457 problem details.

Every error has an HTTP status and a stable machine-readable ``code``; the message names the
offending value. The tree is::

    ApiError                 500 internal
    ├── BadRequestError      400 bad_request
    ├── UnauthenticatedError 401 unauthenticated, invalid_credentials, token_invalid,
    │                            token_reused
    ├── ForbiddenError       403 forbidden, consent_required
    ├── NotFoundError        404 not_found
    ├── ConflictError        409 conflict, email_taken, idempotency_in_progress
    ├── PayloadTooLargeError 413 payload_too_large
    ├── UnprocessableError   422 validation_failed, idempotency_key_reused
    ├── RateLimitedError     429 rate_limited
    └── UnavailableError     503 unavailable, not_ready

(and 503 ``database_unavailable`` when a statement met a dead database connection)

(the first code is the class's default; the others are passed where raised).
Handlers registered by :func:`install_handlers` turn these, request validation errors,
Starlette's HTTP errors and anything unexpected into ``application/problem+json`` bodies:
``{"type", "title", "status", "detail", "code", "instance"}`` (+ ``errors`` for validation).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "PROBLEM_JSON",
    "ApiError",
    "BadRequestError",
    "ConflictError",
    "ForbiddenError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnprocessableError",
    "install_handlers",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://mpt.example/problems/"
log = logging.getLogger("api.errors")


class ApiError(Exception):
    """Base of every error the API raises on purpose.

    Parameters
    ----------
    detail : str
        What went wrong, naming the offending value.
    code : str, optional
        A stable code; defaults to the class's.
    headers : mapping, optional
        Extra response headers (``WWW-Authenticate``, ``Retry-After`` ...).
    extra : mapping, optional
        Extra members of the problem body (e.g. ``conflicts``).
    """

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class BadRequestError(ApiError):
    status, default_code, title = 400, "bad_request", "Bad request"


class UnauthenticatedError(ApiError):
    status, default_code, title = 401, "unauthenticated", "Not authenticated"

    def __init__(self, detail: str, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class ForbiddenError(ApiError):
    status, default_code, title = 403, "forbidden", "Forbidden"


class NotFoundError(ApiError):
    status, default_code, title = 404, "not_found", "Not found"


class ConflictError(ApiError):
    status, default_code, title = 409, "conflict", "Conflict"


class PayloadTooLargeError(ApiError):
    status, default_code, title = 413, "payload_too_large", "Payload too large"


class UnprocessableError(ApiError):
    status, default_code, title = 422, "validation_failed", "Unprocessable content"


class RateLimitedError(ApiError):
    status, default_code, title = 429, "rate_limited", "Too many requests"


class UnavailableError(ApiError):
    status, default_code, title = 503, "unavailable", "Service unavailable"


_STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Not authenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_failed", "Unprocessable content"),
    429: ("rate_limited", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def problem_response(
    request: Request | None,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """An ``application/problem+json`` response (RFC 9457) with a stable ``code``."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request is not None:
        body["instance"] = request.url.path
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}),
                        media_type=PROBLEM_JSON)


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return out


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem_response(request, status=exc.status, code=exc.code, title=exc.title,
                            detail=exc.detail, headers=exc.headers, extra=exc.extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc.errors())
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) or "request"
    return problem_response(request, status=422, code="validation_failed",
                            title="Unprocessable content",
                            detail=f"{where}: {first['msg']}", extra={"errors": errors})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _STATUS_CODES.get(exc.status_code, (f"http_{exc.status_code}", "Error"))
    return problem_response(request, status=exc.status_code, code=code, title=title,
                            detail=str(exc.detail), headers=exc.headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A statement met a dead database connection (the database restarted or dropped it):
    SQLAlchemy has invalidated the pool, so a retry gets a new connection -> 503. Any
    other database error is a bug -> 500, logged."""
    assert isinstance(exc, DBAPIError)
    if exc.connection_invalidated:
        log.warning("database connection lost on %s %s: %s", request.method, request.url.path,
                    str(exc.orig).strip() or type(exc.orig).__name__)
        return problem_response(request, status=503, code="database_unavailable",
                                title="Service unavailable",
                                detail="the database connection was lost; retry the request",
                                headers={"Retry-After": "1"})
    return await _unexpected(request, exc)


async def _pool_timeout(request: Request, exc: Exception) -> JSONResponse:
    """Every connection of the pool stayed busy for the pool's timeout -> 503."""
    log.warning("no database connection free for %s %s: %s", request.method, request.url.path,
                exc)
    return problem_response(request, status=503, code=UnavailableError.default_code,
                            title=UnavailableError.title,
                            detail="no database connection is free; retry shortly",
                            headers={"Retry-After": "1"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, status=500, code="internal", title="Internal error",
                            detail="the server failed to handle this request; it was logged")


def install_handlers(app: FastAPI) -> None:
    """Register the problem-details handlers on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _pool_timeout)
    app.add_exception_handler(Exception, _unexpected)
