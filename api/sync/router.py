"""HTTP routes of offline sync (thin: validate, call the service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse

from api.deps import Principal, SessionDep, StateDep, require_role
from api.metrics.hooks import refresh_leaderboard
from api.openapi import problem
from api.sync import service
from api.sync.schemas import MAX_PULL, SyncBatchRequest, SyncBatchResponse, SyncChangesResponse

__all__ = ["router"]

router = APIRouter(prefix="/sync", tags=["offline sync"])

Student = Annotated[Principal, Depends(require_role("student"))]




@router.post(
    "/batch",
    response_model=SyncBatchResponse,
    summary="Apply a batch of sessions changed offline, exactly once",
    description=(
        "All items apply in one transaction, or none does. Resend a batch with the same "
        "`Idempotency-Key` to get the first answer again (header `Idempotent-Replayed: "
        "true`) without applying it twice. Conflicts are resolved by each item's "
        "`updated_at` (the device's clock of its last edit): newer wins."
    ),
    responses={
        200: {"description": "Per-item outcomes (also when replayed).",
              "headers": {"Idempotent-Replayed": {
                  "description": "`true` when this is the stored answer to an earlier "
                                 "request with the same key.",
                  "schema": {"type": "string"}}}},
        400: problem("Idempotency-Key missing or malformed."),
        401: problem("Not authenticated."),
        403: problem("Only students sync sessions."),
        409: problem("A request with this key is still being applied; retry."),
        413: problem("Body too large."),
        422: problem("Invalid item (the whole batch is refused), or the key was used for "
                      "another body (`idempotency_key_reused`)."),
    },
)
async def sync_batch(
    body: SyncBatchRequest,
    user: Student,
    state: StateDep,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="Unique per batch; reuse it to retry."),
    ] = None,
) -> JSONResponse:
    key = service.check_idempotency_key(idempotency_key)
    outcome = await service.apply_batch(state.sessions, user, key, body)
    if not outcome.replayed:
        await refresh_leaderboard(state, user.id, [item.started_at for item in body.sessions],
                                  version=outcome.cached)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


@router.get(
    "/changes",
    summary="Pull the caller's sessions changed since a cursor",
    responses={401: problem("Not authenticated."),
               422: problem("Bad `since` cursor (`invalid_cursor`) or limit.")},
)
async def sync_changes(
    user: Student,
    db: SessionDep,
    since: Annotated[
        str | None,
        Query(max_length=32, description="The `cursor` of the last pull or batch; absent = all."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PULL)] = 100,
) -> SyncChangesResponse:
    return await service.pull_changes(db, user, since=since, limit=limit)
