"""Dependencies shared by every router, as ``Annotated`` aliases.

``StateDep`` (the app's long-lived parts), ``SessionDep`` (a database session per request;
services own their transactions), ``ReadSessionDep`` (the same for routes that only read,
in autocommit mode), ``CurrentUser`` (the caller, from a Bearer access token,
counted against the per-user rate limit), ``OptionalUser`` and ``require_role(...)``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.errors import ForbiddenError, UnauthenticatedError, UnavailableError
from api.ratelimit import enforce, rate_limit_headers
from api.state import AppState
from mpt.errors import TokenError
from mpt.tokens import Role

__all__ = [
    "API_AUDIENCE",
    "CurrentUser",
    "OptionalUser",
    "Principal",
    "ReadSessionDep",
    "SessionDep",
    "StateDep",
    "client_address",
    "require_role",
]

API_AUDIENCE = "mpt-api"

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, on every request
    state: AppState = request.app.state.mpt
    return state


StateDep = Annotated[AppState, Depends(get_state)]


@asynccontextmanager
async def _opened(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    try:
        async with maker() as session:
            yield session
    except PoolTimeoutError as exc:
        raise UnavailableError("no database connection is free; retry shortly") from exc


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with _opened(state.sessions) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_read_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with _opened(state.read_sessions) as session:
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
"""A session for routes that only read: autocommit, no transaction round trips
(:func:`api.db.make_read_sessionmaker`)."""


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


async def get_current_user(
    request: Request,
    response: Response,
    state: StateDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    principal = _principal(token, state)
    await state.user_gate.check(principal.id, role=principal.role, issued_at=principal.issued_at)
    request.scope.setdefault("state", {})["user_id"] = str(principal.id)
    limits = state.settings.api.rate_limits
    if limits.enabled:
        decision = await enforce(state.limiter, "user", principal.id.hex,
                                 limit=limits.user_per_min, window_s=60)
        response.headers.update(rate_limit_headers(decision))
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_user)]


async def get_optional_user(
    request: Request,
    response: Response,
    state: StateDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal | None:
    if not token:
        return None
    return await get_current_user(request, response, state, token)


OptionalUser = Annotated[Principal | None, Depends(get_optional_user)]


def require_role(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that lets only the given roles through (403 otherwise)."""

    async def check(user: CurrentUser) -> Principal:
        if user.role not in roles:
            raise ForbiddenError(f"this needs the role {' or '.join(roles)}; you are a {user.role}")
        return user

    return check
