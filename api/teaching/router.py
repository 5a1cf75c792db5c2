"""HTTP routes of the teaching domain (thin: validate, call the service).

Teachers hand out invite codes (``/teachers/me/invites``); a student redeems one
(``POST /students/me/teachers``) to link. Either side may end the link. A minor's data
reaches the teacher only with a guardian's consent recorded on the link
(``/students/{id}/teachers/{id}/consent``). Teachers see a dashboard of their students and
leave timestamped feedback on sessions (``/sessions/{id}/feedback``).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from api.deps import CurrentUser, Principal, ReadSessionDep, SessionDep, require_role
from api.openapi import Responses, problem
from api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery
from api.teaching import service
from api.teaching.schemas import (
    ConsentResponse,
    ConsentUpsertRequest,
    DashboardResponse,
    FeedbackCreateRequest,
    FeedbackListResponse,
    FeedbackResponse,
    FeedbackUpdateRequest,
    InviteCreateRequest,
    InviteListResponse,
    InviteResponse,
    LinkCreateRequest,
    StudentLinkListResponse,
    TeacherLinkListResponse,
    TeacherLinkResponse,
)

__all__ = ["router"]

router = APIRouter()

Teacher = Annotated[Principal, Depends(require_role("teacher"))]
Student = Annotated[Principal, Depends(require_role("student"))]

_DESCRIPTIONS = {
    401: "No valid access token.",
    403: "Not allowed (wrong role, not linked, or `consent_required` for a minor).",
    404: "Not found (`invite_not_found`, `link_not_found`, `consent_not_found`, "
         "`session_not_found`, `feedback_not_found`).",
    409: "Conflict (`invite_unusable` with a `reason`, `link_ended`).",
    422: "Invalid input (`validation_failed`, `invalid_cursor`, `at_s_beyond_session`).",
}


def _problems(*codes: int) -> Responses:
    return {code: problem(_DESCRIPTIONS[code]) for code in codes}


# --- invites -------------------------------------------------------------------------------


@router.post("/teachers/me/invites", status_code=status.HTTP_201_CREATED,
             tags=["teaching"], summary="Create an invite code",
             responses=_problems(401, 403, 422))
async def create_invite(body: InviteCreateRequest, user: Teacher, db: SessionDep
                        ) -> InviteResponse:
    return await service.create_invite(db, user, body)


@router.get("/teachers/me/invites", tags=["teaching"],
            summary="List your invite codes, newest first", responses=_problems(401, 403, 422))
async def list_invites(user: Teacher, db: ReadSessionDep, limit: LimitQuery = DEFAULT_LIMIT,
                       cursor: CursorQuery = None) -> InviteListResponse:
    return await service.list_invites(db, user, limit=limit, cursor=cursor)


@router.delete("/teachers/me/invites/{invite_id}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["teaching"], summary="Revoke an invite code",
               responses=_problems(401, 403, 404, 422))
async def revoke_invite(invite_id: uuid.UUID, user: Teacher, db: SessionDep) -> Response:
    await service.revoke_invite(db, user, invite_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- links ---------------------------------------------------------------------------------


@router.post("/students/me/teachers", status_code=status.HTTP_201_CREATED, tags=["teaching"],
             summary="Redeem an invite code (200 with the link if already linked)",
             responses={200: {"description": "Already linked to that teacher.",
                              "model": TeacherLinkResponse},
                        **_problems(401, 403, 404, 409, 422)})
async def redeem_invite(body: LinkCreateRequest, user: Student, db: SessionDep,
                        response: Response) -> TeacherLinkResponse:
    link, created = await service.redeem_invite(db, user, body.code)
    if not created:
        response.status_code = status.HTTP_200_OK
    return link


@router.get("/students/me/teachers", tags=["teaching"], summary="List your teachers",
            responses=_problems(401, 403, 422))
async def list_teachers(user: Student, db: ReadSessionDep, limit: LimitQuery = DEFAULT_LIMIT,
                        cursor: CursorQuery = None) -> TeacherLinkListResponse:
    return await service.list_teachers(db, user, limit=limit, cursor=cursor)


@router.delete("/students/me/teachers/{teacher_id}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["teaching"],
               summary="Leave a teacher (they see nothing of your data from now on)",
               responses=_problems(401, 403, 404, 422))
async def leave_teacher(teacher_id: uuid.UUID, user: Student, db: SessionDep) -> Response:
    await service.end_link(db, teacher_id=teacher_id, student_id=user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/teachers/me/students", tags=["teaching"],
            summary="List your students with their consent status",
            responses=_problems(401, 403, 422))
async def list_students(user: Teacher, db: ReadSessionDep, limit: LimitQuery = DEFAULT_LIMIT,
                        cursor: CursorQuery = None) -> StudentLinkListResponse:
    return await service.list_students(db, user, limit=limit, cursor=cursor)


@router.delete("/teachers/me/students/{student_id}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["teaching"], summary="Remove a student (ends your access to their data)",
               responses=_problems(401, 403, 404, 422))
async def remove_student(student_id: uuid.UUID, user: Teacher, db: SessionDep) -> Response:
    await service.end_link(db, teacher_id=user.id, student_id=student_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- consent -------------------------------------------------------------------------------


@router.put("/students/{student_id}/teachers/{teacher_id}/consent", tags=["teaching"],
            summary="Record a guardian's consent (the student or an admin)",
            responses={201: {"description": "Consent recorded.", "model": ConsentResponse},
                       **_problems(401, 403, 404, 409, 422)})
async def record_consent(student_id: uuid.UUID, teacher_id: uuid.UUID,
                         body: ConsentUpsertRequest, user: CurrentUser, db: SessionDep,
                         response: Response) -> ConsentResponse:
    consent, created = await service.record_consent(db, user, student_id, teacher_id, body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return consent


@router.delete("/students/{student_id}/teachers/{teacher_id}/consent",
               status_code=status.HTTP_204_NO_CONTENT, tags=["teaching"],
               summary="Revoke a guardian's consent (the student or an admin)",
               responses=_problems(401, 403, 404, 409, 422))
async def revoke_consent(student_id: uuid.UUID, teacher_id: uuid.UUID, user: CurrentUser,
                         db: SessionDep) -> Response:
    await service.revoke_consent(db, user, student_id, teacher_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- dashboard -----------------------------------------------------------------------------


@router.get("/teachers/me/dashboard", tags=["teaching"],
            summary="Your students' recent sessions, minutes per week and accuracy trend",
            responses=_problems(401, 403, 422))
async def dashboard(
    user: Teacher, db: ReadSessionDep,
    weeks: Annotated[int, Query(ge=1, le=52, description="ISO weeks to cover, 1..52.")] = 8,
) -> DashboardResponse:
    return await service.dashboard(db, user, weeks=weeks)


# --- feedback ------------------------------------------------------------------------------


@router.post("/sessions/{session_id}/feedback", status_code=status.HTTP_201_CREATED,
             tags=["feedback"], summary="Leave timestamped feedback on a session (teachers)",
             responses=_problems(401, 403, 404, 422))
async def create_feedback(session_id: uuid.UUID, body: FeedbackCreateRequest,
                          user: CurrentUser, db: SessionDep) -> FeedbackResponse:
    return await service.create_feedback(db, user, session_id, body)


@router.get("/sessions/{session_id}/feedback", tags=["feedback"],
            summary="List a session's feedback by position", responses=_problems(401, 403, 404,
                                                                                  422))
async def list_feedback(session_id: uuid.UUID, user: CurrentUser, db: ReadSessionDep,
                        limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
                        ) -> FeedbackListResponse:
    return await service.list_feedback(db, user, session_id, limit=limit, cursor=cursor)


@router.patch("/sessions/{session_id}/feedback/{feedback_id}", tags=["feedback"],
              summary="Change feedback (its author or an admin)",
              responses=_problems(401, 403, 404, 422))
async def update_feedback(session_id: uuid.UUID, feedback_id: uuid.UUID,
                          body: FeedbackUpdateRequest, user: CurrentUser, db: SessionDep
                          ) -> FeedbackResponse:
    return await service.update_feedback(db, user, session_id, feedback_id, body)


@router.delete("/sessions/{session_id}/feedback/{feedback_id}",
               status_code=status.HTTP_204_NO_CONTENT, tags=["feedback"],
               summary="Delete feedback (its author or an admin; hidden, not erased)",
               responses=_problems(401, 403, 404, 422))
async def delete_feedback(session_id: uuid.UUID, feedback_id: uuid.UUID, user: CurrentUser,
                          db: SessionDep) -> Response:
    await service.delete_feedback(db, user, session_id, feedback_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
