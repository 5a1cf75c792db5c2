"""Request plumbing as plain ASGI middleware: request ids, structured access logs,
Prometheus metrics per route template, and the request body size limit.

Plain ASGI (not ``BaseHTTPMiddleware``) keeps the per-request cost low and streams bodies.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from api.errors import PayloadTooLargeError

__all__ = ["ApiMetrics", "BodyLimitMiddleware", "JsonLogFormatter", "RequestMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("api.access")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._skip and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


class ApiMetrics:
    """The API's Prometheus metrics, in a registry of the app's own (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mpt_api_requests", "HTTP requests by route, method and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "mpt_api_request_duration_seconds", "HTTP request latency by route",
            ["method", "route"], registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.in_flight = Gauge(
            "mpt_api_requests_in_flight", "HTTP requests being served", registry=self.registry
        )


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestMiddleware:
    """Give every request an id (``X-Request-ID``, kept when the client sends a sane one),
    count it in the metrics and write one access log line."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if 0 < len(candidate) <= 128 and candidate.isprintable():
                    request_id = candidate
                break
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d", method, scope.get("path", ""), status,
                    extra={"request_id": request_id, "route": route, "status": status,
                           "duration_ms": round(elapsed * 1000, 2),
                           "user_id": scope["state"].get("user_id")},
                )


class BodyLimitMiddleware:
    """Refuse a request body over ``max_bytes`` with 413 problem details: at once when
    ``Content-Length`` says so, else as soon as the streamed body passes the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(scope, send, declared)
                    return
                break
        received = 0
        exceeded = False
        replaced = False

        async def receive_wrapper() -> Message:
            # Raised inside the route while it reads the body. FastAPI turns errors while
            # parsing a body into 400, so the response is replaced by the 413 below.
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise PayloadTooLargeError(
                        f"the request body ({received} bytes or more) exceeds the limit of "
                        f"{self.max_bytes} bytes"
                    )
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if exceeded and message["type"] == "http.response.start":
                replaced = True
                await self._refuse(scope, send, received)
                return
            await send(message)

        await self.app(scope, receive_wrapper, send_wrapper)

    async def _refuse(self, scope: Scope, send: Send, size: int) -> None:
        body = json.dumps({
            "type": "https://mpt.example/problems/payload_too_large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"the request body ({size} bytes or more) exceeds the limit of "
                      f"{self.max_bytes} bytes",
            "code": "payload_too_large",
            "instance": scope.get("path", ""),
        }).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body})
