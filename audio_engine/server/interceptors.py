"""The one server interceptor: authentication when a call opens, and domain errors mapped to
gRPC status codes.

Every method of ``mpt.audio.v1.AudioAnalysis`` requires ``authorization: Bearer <token>``
metadata: an Ed25519 JWT for audience ``mpt-engine``, verified with the public key only
(:func:`mpt.tokens.verify_token`) when the call opens — a token that expires during a long
stream does not cut it. The verified claims are available to the servicer through
:func:`current_claims`. The health and reflection services are open.

Errors raised by a method become status codes with their message:

==========================================  ====================
ParameterError, AudioDecodeError            INVALID_ARGUMENT
TokenError                                  UNAUTHENTICATED
StreamNotFoundError                         NOT_FOUND
StreamOwnerError                            PERMISSION_DENIED
StreamBusyError                             FAILED_PRECONDITION
StreamTakenOverError, StreamCutError        ABORTED
OverloadedError                             RESOURCE_EXHAUSTED
ShuttingDownError, QueueError,              UNAVAILABLE
CheckpointStoreError
anything else                               INTERNAL ("internal error", logged)
==========================================  ====================
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, cast

import grpc
import grpc.aio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audio_engine.errors import AudioDecodeError, ParameterError
from audio_engine.server.errors import (
    CheckpointStoreError,
    OverloadedError,
    ShuttingDownError,
    StreamBusyError,
    StreamCutError,
    StreamNotFoundError,
    StreamOwnerError,
    StreamTakenOverError,
)
from audio_engine.server.metrics import EngineMetrics
from mpt.errors import QueueError, TokenError
from mpt.tokens import Claims, verify_token

__all__ = ["AUDIENCE", "SERVICE_PREFIX", "EngineInterceptor", "current_claims", "status_for"]

_log = logging.getLogger(__name__)

AUDIENCE: Final = "mpt-engine"
SERVICE_PREFIX: Final = "/mpt.audio.v1.AudioAnalysis/"

_Context = grpc.aio.ServicerContext[Any, Any]
_StreamBehavior = Callable[[Any, _Context], AsyncIterator[Any]]
_UnaryBehavior = Callable[[Any, _Context], Awaitable[Any]]

_claims: contextvars.ContextVar[Claims] = contextvars.ContextVar("mpt_engine_claims")

_STATUS: Final[tuple[tuple[type[BaseException], grpc.StatusCode], ...]] = (
    (ParameterError, grpc.StatusCode.INVALID_ARGUMENT),
    (AudioDecodeError, grpc.StatusCode.INVALID_ARGUMENT),
    (TokenError, grpc.StatusCode.UNAUTHENTICATED),
    (StreamNotFoundError, grpc.StatusCode.NOT_FOUND),
    (StreamOwnerError, grpc.StatusCode.PERMISSION_DENIED),
    (StreamBusyError, grpc.StatusCode.FAILED_PRECONDITION),
    (StreamTakenOverError, grpc.StatusCode.ABORTED),
    (StreamCutError, grpc.StatusCode.ABORTED),
    (OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ShuttingDownError, grpc.StatusCode.UNAVAILABLE),
    (QueueError, grpc.StatusCode.UNAVAILABLE),
    (CheckpointStoreError, grpc.StatusCode.UNAVAILABLE),
)


def current_claims() -> Claims:
    """The verified claims of the call being served (set by :class:`EngineInterceptor`).

    Raises
    ------
    TokenError
        The call was not authenticated (the interceptor is not installed).
    """
    try:
        return _claims.get()
    except LookupError:
        raise TokenError("the call carries no verified token") from None


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message of an error raised by a method."""
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, "internal error"


class EngineInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates ``AudioAnalysis`` calls and maps their errors to status codes.

    Parameters
    ----------
    public_key : Ed25519PublicKey
        Verifies the tokens.
    metrics : EngineMetrics
        ``errors_total`` is counted by status code.
    leeway_s : float
        Clock skew tolerated on ``exp`` and ``iat``.
    """

    def __init__(
        self, *, public_key: Ed25519PublicKey, metrics: EngineMetrics, leeway_s: float = 30.0
    ) -> None:
        self._public_key = public_key
        self._metrics = metrics
        self._leeway_s = leeway_s

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        # grpc.aio handlers hold coroutine functions; the stubs type them as the sync ones.
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(cast(_StreamBehavior, handler.stream_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(cast(_UnaryBehavior, handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        raise TypeError(f"{method}: unsupported method kind")  # the contract has no others

    # ----------------------------------------------------------------------------------

    def _authenticate(self, context: _Context) -> Claims:
        values = [
            v for k, v in (context.invocation_metadata() or ()) if k.lower() == "authorization"
        ]
        if not values:
            raise TokenError("missing 'authorization: Bearer <token>' metadata")
        if len(values) > 1:
            raise TokenError("more than one 'authorization' metadata entry")
        value = values[0]
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenError("the 'authorization' metadata must be 'Bearer <token>'")
        return verify_token(
            token.strip(), self._public_key, audience=AUDIENCE, leeway_s=self._leeway_s
        )

    async def _abort(self, context: _Context, exc: Exception) -> None:
        code, message = status_for(exc)
        if code is grpc.StatusCode.INTERNAL:
            _log.error("unexpected error in a call", exc_info=exc)
        self._metrics.errors_total.labels(code.name).inc()
        await context.abort(code, message)

    def _wrap_stream(self, behavior: _StreamBehavior) -> _StreamBehavior:
        async def wrapper(request_iterator: Any, context: _Context) -> AsyncIterator[Any]:
            try:
                # Each call runs in its own task with its own copy of the context, so the
                # claims need no reset (a generator may be closed from another context).
                _claims.set(self._authenticate(context))
                async for response in behavior(request_iterator, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._abort(context, exc)

        return wrapper

    def _wrap_unary(self, behavior: _UnaryBehavior) -> _UnaryBehavior:
        async def wrapper(request: Any, context: _Context) -> Any:
            try:
                _claims.set(self._authenticate(context))
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._abort(context, exc)
                raise AssertionError("unreachable: abort raises") from exc

        return wrapper
