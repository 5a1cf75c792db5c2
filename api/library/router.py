"""HTTP routes of the library domain (thin: validate, call the service).

Two routers over one service: ``/tags`` (kind ``tag``) and ``/pieces`` (kind ``piece``, with
composer, difficulty, typical duration and the heatmap); :data:`router` includes both.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime

from api.deps import CurrentUser, SessionDep
from api.errors import UnprocessableError
from api.library import service
from api.library.schemas import (
    HeatmapResponse,
    PieceCreateRequest,
    PieceListResponse,
    PieceResponse,
    PieceUpdateRequest,
    TagCreateRequest,
    TagListResponse,
    TagResponse,
    TagScope,
    TagUpdateRequest,
)
from api.openapi import Responses, problem
from api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery

__all__ = ["pieces_router", "router", "tags_router"]

_DESCRIPTIONS = {
    401: "No valid access token.",
    403: "Not allowed (e.g. a global tag by a non-admin).",
    404: "No such tag visible to you.",
    409: "The name is taken in that scope (`tag_exists`).",
    422: "Invalid input (`validation_failed`, `invalid_cursor`, `too_many_bars`).",
}


def _problems(*codes: int) -> Responses:
    return {code: problem(_DESCRIPTIONS[code]) for code in codes}


ScopeQuery = Annotated[TagScope, Query(
    description="`all` (global and yours), `global`, or `personal` (yours only).")]
SearchQuery = Annotated[str | None, Query(
    max_length=100, description="Part of the name (prefix or substring), ignoring case.")]


def _check_search(q: str | None) -> None:
    if q is not None and any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in q):
        raise UnprocessableError(f"q {q!r} contains a control character", code="validation_failed")


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise UnprocessableError(f"{name} {value.isoformat()} is out of range in UTC") from None


tags_router = APIRouter(prefix="/tags", tags=["tags"])
pieces_router = APIRouter(prefix="/pieces", tags=["pieces"])


# --- tags -----------------------------------------------------------------------------------


@tags_router.get("", response_model=TagListResponse, summary="List the tags you can use",
                 responses=_problems(401, 422))
async def list_tags(
    db: SessionDep, user: CurrentUser, scope: ScopeQuery = "all", q: SearchQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None,
) -> TagListResponse:
    _check_search(q)
    tags, next_cursor = await service.list_tags(db, user, kind="tag", scope=scope, q=q,
                                                limit=limit, cursor=cursor)
    return TagListResponse(items=[TagResponse.of(t) for t in tags], next_cursor=next_cursor)


@tags_router.post("", response_model=TagResponse, status_code=status.HTTP_201_CREATED,
                  summary="Create a personal tag (or a global one, admins only)",
                  responses=_problems(401, 403, 409, 422))
async def create_tag(body: TagCreateRequest, db: SessionDep, user: CurrentUser) -> TagResponse:
    tag = await service.create_tag(db, user, kind="tag", name=body.name,
                                   make_global=body.is_global)
    return TagResponse.of(tag)


@tags_router.get("/{tag_id}", response_model=TagResponse, summary="Get a tag",
                 responses=_problems(401, 404, 422))
async def get_tag(tag_id: uuid.UUID, db: SessionDep, user: CurrentUser) -> TagResponse:
    return TagResponse.of(await service.get_tag(db, user, tag_id, kind="tag"))


@tags_router.patch("/{tag_id}", response_model=TagResponse, summary="Rename a tag",
                   responses=_problems(401, 403, 404, 409, 422))
async def update_tag(tag_id: uuid.UUID, body: TagUpdateRequest, db: SessionDep,
                     user: CurrentUser) -> TagResponse:
    tag = await service.update_tag(db, user, tag_id, kind="tag", changes=body.changes())
    return TagResponse.of(tag)


@tags_router.delete("/{tag_id}", status_code=status.HTTP_204_NO_CONTENT,
                    summary="Delete a tag (soft: sessions keep it)",
                    responses=_problems(401, 403, 404, 422))
async def delete_tag(tag_id: uuid.UUID, db: SessionDep, user: CurrentUser) -> Response:
    await service.delete_tag(db, user, tag_id, kind="tag")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- pieces ---------------------------------------------------------------------------------


@pieces_router.get("", response_model=PieceListResponse,
                   summary="List the pieces you can use", responses=_problems(401, 422))
async def list_pieces(
    db: SessionDep, user: CurrentUser, scope: ScopeQuery = "all", q: SearchQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None,
) -> PieceListResponse:
    _check_search(q)
    pieces, next_cursor = await service.list_tags(db, user, kind="piece", scope=scope, q=q,
                                                  limit=limit, cursor=cursor)
    return PieceListResponse(items=[PieceResponse.of(p) for p in pieces],
                             next_cursor=next_cursor)


@pieces_router.post("", response_model=PieceResponse, status_code=status.HTTP_201_CREATED,
                    summary="Create a personal piece (or a global one, admins only)",
                    responses=_problems(401, 403, 409, 422))
async def create_piece(body: PieceCreateRequest, db: SessionDep,
                       user: CurrentUser) -> PieceResponse:
    piece = await service.create_tag(
        db, user, kind="piece", name=body.name, make_global=body.is_global,
        composer=body.composer, difficulty=body.difficulty,
        typical_duration_s=body.typical_duration_s,
    )
    return PieceResponse.of(piece)


@pieces_router.get("/{piece_id}", response_model=PieceResponse, summary="Get a piece",
                   responses=_problems(401, 404, 422))
async def get_piece(piece_id: uuid.UUID, db: SessionDep, user: CurrentUser) -> PieceResponse:
    return PieceResponse.of(await service.get_tag(db, user, piece_id, kind="piece"))


@pieces_router.patch("/{piece_id}", response_model=PieceResponse, summary="Change a piece",
                     responses=_problems(401, 403, 404, 409, 422))
async def update_piece(piece_id: uuid.UUID, body: PieceUpdateRequest, db: SessionDep,
                       user: CurrentUser) -> PieceResponse:
    piece = await service.update_tag(db, user, piece_id, kind="piece", changes=body.changes())
    return PieceResponse.of(piece)


@pieces_router.delete("/{piece_id}", status_code=status.HTTP_204_NO_CONTENT,
                      summary="Delete a piece (soft: sessions and segments keep it)",
                      responses=_problems(401, 403, 404, 422))
async def delete_piece(piece_id: uuid.UUID, db: SessionDep, user: CurrentUser) -> Response:
    await service.delete_tag(db, user, piece_id, kind="piece")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@pieces_router.get(
    "/{piece_id}/heatmap", response_model=HeatmapResponse,
    summary="The most practised bars of a piece",
    description=(
        "Across the student's active sessions (optionally those with `started_from <= "
        "started_at < started_to`): per bar the clicks (repetitions of segments covering it), "
        "seconds (each segment's duration spread evenly over its bars), sessions touching it "
        "and intensity (clicks relative to the busiest bar); `top_sections` are up to 5 "
        "maximal runs of bars with intensity >= 0.5, ranked by their peak clicks. Visible to "
        "the student, their teachers (with consent for minors) and admins."
    ),
    responses=_problems(401, 403, 404, 422),
)
async def piece_heatmap(
    piece_id: uuid.UUID,
    db: SessionDep,
    user: CurrentUser,
    student_id: Annotated[uuid.UUID | None, Query(description="Default: you.")] = None,
    started_from: Annotated[AwareDatetime | None, Query(
        description="Only sessions started at or after this time (with a time zone).")] = None,
    started_to: Annotated[AwareDatetime | None, Query(
        description="Only sessions started before this time (with a time zone).")] = None,
) -> HeatmapResponse:
    started_from, started_to = _utc(started_from, "started_from"), _utc(started_to, "started_to")
    if started_from is not None and started_to is not None and started_to < started_from:
        raise UnprocessableError(
            f"started_to {started_to.isoformat()} is before started_from "
            f"{started_from.isoformat()}")
    piece, student, heatmap = await service.piece_heatmap(
        db, user, piece_id, student_id=student_id, started_from=started_from,
        started_to=started_to,
    )
    return HeatmapResponse.of(piece, student, heatmap)


router = APIRouter()
router.include_router(tags_router)
router.include_router(pieces_router)
