"""HTTP routes of practice sessions (thin: validate, call the service)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import AwareDatetime

from api.deps import CurrentUser, Principal, ReadSessionDep, SessionDep, StateDep, require_role
from api.metrics.hooks import refresh_leaderboard, session_started_at
from api.openapi import Responses, problem
from api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery
from api.practice import service
from api.practice.schemas import (
    Mode,
    SessionCreateRequest,
    SessionListResponse,
    SessionResponse,
    SessionUpdateRequest,
)

__all__ = ["router"]

router = APIRouter(prefix="/sessions", tags=["practice sessions"])

Student = Annotated[Principal, Depends(require_role("student"))]





_401: Responses = {401: problem("Not authenticated.")}
_403: Responses = {403: problem("Not the owner, or a teacher without access or consent.")}
_404: Responses = {404: problem("No such session (or it was deleted).")}
_422: Responses = {422: problem("Invalid times, ranges, tags, pieces or cursor.")}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Record a practice session",
    responses={**_401, 403: problem("Only students record sessions."),
               409: problem("A session with this id already exists."), **_422},
)
async def create_session(
    body: SessionCreateRequest, user: Student, db: SessionDep, state: StateDep
) -> SessionResponse:
    created, cached = await service.create_session(db, user, body)
    await refresh_leaderboard(state, user.id, [created.started_at], version=cached)
    return created


@router.get(
    "",
    summary="List a student's practice sessions, newest first",
    responses={**_401, **_403, **_422},
)
async def list_sessions(
    user: CurrentUser,
    db: ReadSessionDep,
    student_id: Annotated[
        uuid.UUID | None, Query(description="Whose sessions (default: the caller's).")
    ] = None,
    started_from: Annotated[
        AwareDatetime | None, Query(description="Started at or after (inclusive).")
    ] = None,
    started_to: Annotated[
        AwareDatetime | None, Query(description="Started before (exclusive).")
    ] = None,
    tag_id: Annotated[uuid.UUID | None, Query(description="Carries this tag.")] = None,
    piece_id: Annotated[
        uuid.UUID | None, Query(description="Tagged with this piece or has a segment of it.")
    ] = None,
    mode: Mode | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> SessionListResponse:
    filters = service.ListFilters(started_from=started_from, started_to=started_to,
                                  tag_id=tag_id, piece_id=piece_id, mode=mode)
    return await service.list_sessions(db, user, student_id=student_id, filters=filters,
                                       limit=limit, cursor=cursor)


@router.get(
    "/{session_id}",
    summary="Read a practice session",
    responses={**_401, **_403, **_404},
)
async def get_session(session_id: uuid.UUID, user: CurrentUser, db: ReadSessionDep
                      ) -> SessionResponse:
    return await service.get_session(db, user, session_id)


@router.patch(
    "/{session_id}",
    summary="Change a practice session (owner only)",
    responses={**_401, **_403, **_404, **_422},
)
async def update_session(
    session_id: uuid.UUID, body: SessionUpdateRequest, user: CurrentUser, db: SessionDep,
    state: StateDep,
) -> SessionResponse:
    before = await session_started_at(state, session_id)
    updated = await service.update_session(db, user, session_id, body)
    await refresh_leaderboard(state, user.id, [t for t in (before, updated.started_at) if t])
    return updated


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a practice session (owner only; kept as a tombstone for sync)",
    responses={**_401, **_403, **_404},
)
async def delete_session(session_id: uuid.UUID, user: CurrentUser, db: SessionDep,
                         state: StateDep) -> Response:
    before = await session_started_at(state, session_id)
    await service.delete_session(db, user, session_id)
    await refresh_leaderboard(state, user.id, [before] if before else [])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
