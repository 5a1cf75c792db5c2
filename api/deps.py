"""Dependencies shared by every router, as ``Annotated`` aliases.

``StateDep`` (the app's long-lived parts), ``SessionDep`` (a database session per request;
services own their transactions), ``ReadSessionDep`` (the same for routes that only read,
in autocommit mode), ``CurrentUser`` (the caller, from a Bearer access token,
counted against the per-user rate limit), ``OptionalUser`` and ``require_role(...)``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ForbiddenError, UnauthenticatedError
from api.ratelimit import enforce, rate_limit_headers
from api.state import AppState
from mpt.errors import TokenError
from mpt.tokens import Role

__all__ = [
    "API_AUDIENCE",
    "BearerUser",
    "CloseSessions",
    "CurrentUser",
    "OptionalUser",
    "Principal",
    "ReadSessionDep",
    "SessionDep",
    "StateDep",
    "authenticate",
    "client_address",
    "require_role",
]

API_AUDIENCE = "mpt-api"

TOKEN_URL = "/api/v1/auth/token"
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, on every request
    return _state(request)


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.mpt
    return state


StateDep = Annotated[AppState, Depends(get_state)]


# A request's sessions are closed by :class:`CloseSessions` once the response is sent, not by a
# dependency with ``yield``: FastAPI wraps each of those in an exit stack, a context manager and
# a shielded cancel scope, which cost a sixth of the CPU of a cheap read.
_SESSIONS = "mpt.db_sessions"  # the request scope's key of its open sessions


def _opened(request: Request, maker: async_sessionmaker[AsyncSession]) -> AsyncSession:
    session = maker()
    request.scope.setdefault(_SESSIONS, []).append(session)
    return session


# The dependencies every route takes (the session, the caller) read the app's state from the
# request rather than through ``StateDep``: FastAPI solves each dependency of a dependency
# again on every request.


async def get_session(request: Request) -> AsyncSession:
    return _opened(request, _state(request).sessions)


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_read_session(request: Request) -> AsyncSession:
    return _opened(request, _state(request).read_sessions)


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
"""A session for routes that only read: autocommit, no transaction round trips
(:func:`api.db.make_read_sessionmaker`)."""


class CloseSessions:
    """ASGI middleware closing the database sessions a request's dependencies opened
    (``SessionDep``, ``ReadSessionDep``) once the app has answered, also when it failed or
    was cancelled: an open transaction is rolled back and the connection goes back to the
    pool. Install it inside the middleware that may answer without the app (the body limit,
    the access log)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            sessions: list[AsyncSession] | None = scope.pop(_SESSIONS, None)
            if sessions:
                task = asyncio.current_task()
                closing = _close(sessions)
                if task is not None and task.cancelling():
                    await asyncio.shield(closing)  # a cancelled request still frees its sessions
                else:
                    await closing


async def _close(sessions: list[AsyncSession]) -> None:
    for session in sessions:
        await session.close()


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, from the access token's claims."""

    id: uuid.UUID
    role: Role
    jti: str
    issued_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def client_address(request: Request) -> str:
    """The caller's address (the peer of the connection; a proxy must set it right)."""
    return request.client.host if request.client else "unknown"


def _principal(token: str | None, state: AppState) -> Principal:
    if not token:
        raise UnauthenticatedError(
            "no bearer token: log in and send 'Authorization: Bearer <token>'"
        )
    try:
        claims = state.tokens.verify(token)
    except TokenError as exc:
        raise UnauthenticatedError(str(exc), code="token_invalid") from None
    try:
        user_id = uuid.UUID(claims.sub)
    except ValueError:
        raise UnauthenticatedError("token rejected: its subject is not a user id",
                              code="token_invalid") from None
    return Principal(id=user_id, role=claims.role, jti=claims.jti, issued_at=claims.issued_at)


_PRINCIPAL = "mpt.principal"  # the request scope's key of the caller, once authenticated


async def authenticate(request: Request, response: Response, token: str | None) -> Principal:
    """The caller of ``token`` (a Bearer access token): verified, checked against the user
    gate, counted against the per-user rate limit (its headers set on ``response``). Once
    per request: a second call returns the first one's caller."""
    known: Principal | None = request.scope.get(_PRINCIPAL)
    if known is not None:
        return known
    state = _state(request)
    principal = _principal(token, state)
    await state.user_gate.check(principal.id, role=principal.role, issued_at=principal.issued_at)
    request.scope.setdefault("state", {})["user_id"] = str(principal.id)
    limits = state.settings.api.rate_limits
    if limits.enabled:
        decision = await enforce(state.limiter, "user", principal.id.hex,
                                 limit=limits.user_per_min, window_s=60)
        response.headers.update(rate_limit_headers(decision))
    request.scope[_PRINCIPAL] = principal
    return principal


class BearerUser(OAuth2PasswordBearer):
    """The caller, from the Bearer access token, as one dependency: OpenAPI shows it as the
    OAuth2 password flow (it is the security scheme), and FastAPI has one node to solve
    per request instead of the scheme, the state and the user as three.

    Parameters
    ----------
    *roles : Role
        When given, only these roles pass (403 otherwise).
    optional : bool
        Without a token the caller is None instead of 401.
    """

    def __init__(self, *roles: Role, optional: bool = False) -> None:
        # the same scheme as ``oauth2_scheme`` in OpenAPI (its name is the class's)
        super().__init__(tokenUrl=TOKEN_URL, scheme_name=OAuth2PasswordBearer.__name__,
                         auto_error=False)
        self.roles = roles
        self.optional = optional

    async def __call__(  # type: ignore[override]
        self, request: Request, response: Response
    ) -> Principal | None:
        token = await super().__call__(request)
        if not token and self.optional:
            return None
        user = await authenticate(request, response, token)
        if self.roles and user.role not in self.roles:
            raise ForbiddenError(
                f"this needs the role {' or '.join(self.roles)}; you are a {user.role}")
        return user


CurrentUser = Annotated[Principal, Depends(BearerUser())]
OptionalUser = Annotated[Principal | None, Depends(BearerUser(optional=True))]


def require_role(*roles: Role) -> BearerUser:
    """A dependency that lets only the given roles through (403 otherwise)."""
    return BearerUser(*roles)
