"""HTTP routes of the progress domain (thin: validate, call the service).

A student's progress is visible to the student, a linked teacher (with a guardian's consent
for a minor) and an admin (:mod:`api.teaching.access`).

The chart routes (``/students/{id}/charts/{kind}.svg``) are meant to be opened in a browser,
which cannot send an ``Authorization`` header with a plain URL: they also accept the access
token as ``?access_token=<token>`` (verified exactly like the header; the header wins when
both are sent). Such a URL is a short-lived credential: share it only with its holder. The
responses carry ``Cache-Control: private, max-age=60`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from api.db import utcnow
from api.deps import (
    CurrentUser,
    Principal,
    ReadSessionDep,
    authenticate,
    oauth2_scheme,
)
from api.openapi import Responses, problem
from api.progress import service
from api.progress.schemas import (
    CleanTempoResponse,
    HeatmapResponse,
    ProgressResponse,
    RecommendationListResponse,
)
from api.progress.service import ChartKind, Filters, HeatmapValue

__all__ = ["router"]

router = APIRouter(prefix="/students/{student_id}", tags=["progress"])

SVG = "image/svg+xml"





_ERRORS: Responses = {
    401: problem("Not authenticated (missing, invalid or expired token)."),
    403: problem("Not the student, their linked teacher (with consent for a minor: code "
                  "consent_required) or an admin."),
    404: problem("No such student, or a piece_id / tag_id the student cannot use."),
    422: problem("A parameter is out of range or malformed."),
}

Days = Annotated[int, Query(ge=1, le=366, description="Local days back, today included.")]
Weeks = Annotated[int, Query(ge=1, le=52, description="ISO weeks back, this week included.")]
PieceFilter = Annotated[uuid.UUID | None, Query(
    description="Only sessions with this piece (as a tag or in a segment).")]
TagFilter = Annotated[uuid.UUID | None, Query(description="Only sessions with this tag.")]


async def chart_user(
    request: Request,
    response: Response,
    header_token: Annotated[str | None, Depends(oauth2_scheme)],
    access_token: Annotated[str | None, Query(
        max_length=4096,
        description="The access token, for browsers opening the chart URL (instead of the "
        "Authorization header).",
    )] = None,
) -> Principal:
    """The caller from the Bearer header or, failing that, ``?access_token=``."""
    return await authenticate(request, response, header_token or access_token)


ChartUser = Annotated[Principal, Depends(chart_user)]


@router.get(
    "/progress",
    summary="Minutes per day and week, weekly accuracy and steadiness trends",
    responses=_ERRORS,
)
async def get_progress(
    student_id: uuid.UUID,
    user: CurrentUser,
    db: ReadSessionDep,
    days: Days = 28,
    weeks: Weeks = 8,
    piece_id: PieceFilter = None,
    tag_id: TagFilter = None,
) -> ProgressResponse:
    """Every local day of the last ``days`` (the student's time zone), the last ``weeks`` ISO
    weeks, and totals over the days; each session counts once, by its best source."""
    return await service.progress(db, user, student_id, days=days, weeks=weeks,
                                  filters=Filters(piece_id, tag_id), now=utcnow())


@router.get(
    "/pieces/{piece_id}/clean-tempo",
    summary="The highest tempo played cleanly (accuracy >= 90 %) on a piece, over time",
    responses=_ERRORS,
)
async def get_clean_tempo(
    student_id: uuid.UUID, piece_id: uuid.UUID, user: CurrentUser, db: ReadSessionDep,
) -> CleanTempoResponse:
    """The played tempo (else the target) of clean takes; the best so far per local day."""
    return await service.clean_tempo(db, user, student_id, piece_id)


@router.get(
    "/timing-heatmap",
    summary="Where in the bar timing goes wrong, merged over the student's analysed takes",
    responses=_ERRORS,
)
async def get_timing_heatmap(
    student_id: uuid.UUID,
    user: CurrentUser,
    db: ReadSessionDep,
    days: Days = 28,
    piece_id: PieceFilter = None,
    tag_id: TagFilter = None,
) -> HeatmapResponse:
    """Bar x beat cells (with the number of notes in each) and a per-beat summary of the
    streamed or recorded takes of the last ``days`` local days."""
    return await service.heatmap(db, user, student_id, days=days,
                                 filters=Filters(piece_id, tag_id), now=utcnow())


@router.get(
    "/charts/{kind}.svg",
    summary="A progress chart as SVG, to open in a browser",
    response_class=Response,
    responses={
        200: {"description": "The chart.", "content": {SVG: {"schema": {"type": "string"}}}},
        **_ERRORS,
    },
)
async def get_chart(
    student_id: uuid.UUID,
    kind: ChartKind,
    user: ChartUser,
    db: ReadSessionDep,
    days: Days = 28,
    weeks: Weeks = 8,
    piece_id: PieceFilter = None,
    tag_id: TagFilter = None,
    value: Annotated[HeatmapValue, Query(
        description="What the heatmap's colour shows.")] = "mean_abs_dev_ms",
) -> Response:
    """``minutes`` (bars per day, ``days``), ``accuracy`` and ``steadiness`` (weekly lines,
    ``weeks``), ``clean-tempo`` (needs ``piece_id``), ``heatmap`` (``days``, ``value``).
    Authenticate with the Bearer header or ``?access_token=`` (see the module notes)."""
    svg = await service.chart_svg(db, user, student_id, kind, days=days, weeks=weeks,
                                  filters=Filters(piece_id, tag_id), value=value, now=utcnow())
    return Response(content=svg, media_type=SVG, headers={
        "Cache-Control": "private, max-age=60",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    })


@router.get(
    "/recommendations",
    summary="Practice suggestions from the last seven days, with reasons",
    responses=_ERRORS,
)
async def get_recommendations(
    student_id: uuid.UUID, user: CurrentUser, db: ReadSessionDep,
) -> RecommendationListResponse:
    """Slow practice at 70 % of the target tempo for pieces below 70 % accuracy, a steadiness
    drill when the drift goes one way, a rest day after long streaks of long sessions."""
    return await service.recommendations(db, user, student_id, now=utcnow())
