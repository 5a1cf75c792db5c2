"""A user's rights over their data: a full export, and erasure.

:func:`export_account` reads every table that holds something of the user (the models of the
other domains, read-only) and returns plain JSON-ready dictionaries; secrets (password hash,
token hashes) are left out.

:func:`delete_account` erases rather than flags, in one transaction:

- the user's practice sessions (with their segments, tags and the feedback on them), their
  personal tags and pieces, refresh and reset tokens, sync idempotency records and invite
  codes are deleted;
- their teacher-student links are ended, and the guardian consents on those links deleted
  (a guardian's name and e-mail belong to the erased relation); a consent the user recorded
  on someone else's link stays valid but no longer names them (``recorded_by`` NULL);
- feedback they wrote as a teacher on others' sessions stays, anonymised (``teacher_id``
  NULL);
- their role profiles are deleted and the user row is overwritten: e-mail
  ``deleted-<id>@deleted.invalid``, display name "Deleted user", no password, time zone UTC,
  status ``deleted``. The row itself stays so ids elsewhere keep pointing at something.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from fastapi.encoders import jsonable_encoder
from sqlalchemy import delete, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import (
    PasswordResetToken,
    RefreshToken,
    StudentProfile,
    TeacherProfile,
    User,
)
from api.accounts.passwords import verify_password
from api.accounts.rules import deleted_email
from api.db import Base, utcnow
from api.errors import UnauthenticatedError
from api.gamification.models import ReputationGrant, UserAchievement, UserChallenge
from api.metrics.models import MetricRollup, PracticeMetric, ProcessedEvent
from api.practice.models import PracticeSegment, PracticeSession, SessionTag, Tag
from api.state import AppState
from api.sync.models import IdempotencyRecord
from api.teaching.models import InviteCode, MinorConsent, SessionFeedback, TeacherStudentLink

__all__ = ["DELETED_DISPLAY_NAME", "delete_account", "erase_user", "export_account"]

DELETED_DISPLAY_NAME = "Deleted user"


def _row(obj: Base, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The column values of an ORM object, JSON-ready (UUIDs and times as strings)."""
    skip = set(exclude)
    mapper = inspect(type(obj))
    values = {attr.key: getattr(obj, attr.key) for attr in mapper.column_attrs
              if attr.key not in skip}
    encoded: dict[str, Any] = jsonable_encoder(values)
    return encoded


async def export_account(db: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    """Everything stored about ``user_id``, grouped by kind (see ``AccountExportResponse``).

    Raises
    ------
    UnauthenticatedError
        ``account_deleted`` for an erased account.
    """
    async with db.begin():
        user = await db.get(User, user_id)
        if user is None or user.status == "deleted":
            raise UnauthenticatedError(f"account {user_id} was deleted", code="account_deleted")
        student = await db.get(StudentProfile, user_id)
        teacher = await db.get(TeacherProfile, user_id)

        sessions = list((await db.execute(
            select(PracticeSession).where(PracticeSession.student_id == user_id)
            .order_by(PracticeSession.started_at, PracticeSession.id)
        )).scalars())
        session_ids = [s.id for s in sessions]
        tag_ids: dict[uuid.UUID, list[str]] = defaultdict(list)
        segments: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        feedback_by_session: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        feedback_received: list[dict[str, Any]] = []
        if session_ids:
            for session_id, tag_id in (await db.execute(
                select(SessionTag.session_id, SessionTag.tag_id)
                .where(SessionTag.session_id.in_(session_ids))
                .order_by(SessionTag.session_id, SessionTag.tag_id)
            )).all():
                tag_ids[session_id].append(str(tag_id))
            for segment in (await db.execute(
                select(PracticeSegment).where(PracticeSegment.session_id.in_(session_ids))
                .order_by(PracticeSegment.session_id, PracticeSegment.id)
            )).scalars():
                segments[segment.session_id].append(_row(segment))
            for item in (await db.execute(
                select(SessionFeedback).where(SessionFeedback.session_id.in_(session_ids))
                .order_by(SessionFeedback.created_at, SessionFeedback.id)
            )).scalars():
                row = _row(item)
                feedback_by_session[item.session_id].append(row)
                feedback_received.append(row)

        personal = list((await db.execute(
            select(Tag).where(Tag.owner_id == user_id).order_by(Tag.created_at, Tag.id)
        )).scalars())
        feedback_given = [_row(f) for f in (await db.execute(
            select(SessionFeedback).where(SessionFeedback.teacher_id == user_id)
            .order_by(SessionFeedback.created_at, SessionFeedback.id)
        )).scalars()]
        links = list((await db.execute(
            select(TeacherStudentLink)
            .where(or_(TeacherStudentLink.teacher_id == user_id,
                       TeacherStudentLink.student_id == user_id))
            .order_by(TeacherStudentLink.linked_at, TeacherStudentLink.id)
        )).scalars())
        link_ids = [link.id for link in links]
        consent_filter = MinorConsent.recorded_by == user_id
        if link_ids:
            consent_filter = or_(consent_filter, MinorConsent.link_id.in_(link_ids))
        consents = [_row(c) for c in (await db.execute(
            select(MinorConsent).where(consent_filter)
            .order_by(MinorConsent.granted_at, MinorConsent.id)
        )).scalars()]
        invites = [_row(i) for i in (await db.execute(
            select(InviteCode).where(InviteCode.teacher_id == user_id)
            .order_by(InviteCode.created_at, InviteCode.id)
        )).scalars()]
        sign_ins = [_row(t, exclude=("token_hash", "user_id")) for t in (await db.execute(
            select(RefreshToken).where(RefreshToken.user_id == user_id)
            .order_by(RefreshToken.created_at, RefreshToken.id)
        )).scalars()]
        sync_requests = [_row(r, exclude=("user_id",)) for r in (await db.execute(
            select(IdempotencyRecord).where(IdempotencyRecord.user_id == user_id)
            .order_by(IdempotencyRecord.created_at, IdempotencyRecord.id)
        )).scalars()]
        metrics = [_row(m, exclude=("student_id",)) for m in (await db.execute(
            select(PracticeMetric).where(PracticeMetric.student_id == user_id)
            .order_by(PracticeMetric.time, PracticeMetric.id)
        )).scalars()]
        achievements = [_row(a, exclude=("user_id",)) for a in (await db.execute(
            select(UserAchievement).where(UserAchievement.user_id == user_id)
            .order_by(UserAchievement.achieved_at)
        )).scalars()]
        challenges = [_row(c, exclude=("user_id",)) for c in (await db.execute(
            select(UserChallenge).where(UserChallenge.user_id == user_id)
            .order_by(UserChallenge.started_at, UserChallenge.id)
        )).scalars()]
        reputation = [_row(g, exclude=("user_id",)) for g in (await db.execute(
            select(ReputationGrant).where(ReputationGrant.user_id == user_id)
            .order_by(ReputationGrant.granted_at)
        )).scalars()]

    practice = []
    for session in sessions:
        row = _row(session)
        row["tag_ids"] = tag_ids.get(session.id, [])
        row["segments"] = segments.get(session.id, [])
        row["feedback"] = feedback_by_session.get(session.id, [])
        practice.append(row)
    return {
        "exported_at": utcnow(),
        "account": _row(user, exclude=("password_hash",)),
        "student_profile": _row(student) if student is not None else None,
        "teacher_profile": _row(teacher) if teacher is not None else None,
        "practice_sessions": practice,
        "tags": [_row(t) for t in personal if t.kind == "tag"],
        "pieces": [_row(t) for t in personal if t.kind == "piece"],
        "feedback_received": feedback_received,
        "feedback_given": feedback_given,
        "teacher_links": [_row(link) for link in links],
        "consents": consents,
        "invite_codes": invites,
        "sign_ins": sign_ins,
        "sync_requests": sync_requests,
        "practice_metrics": metrics,
        "achievements": achievements,
        "challenges": challenges,
        "reputation_grants": reputation,
    }


async def delete_account(state: AppState, db: AsyncSession, user_id: uuid.UUID, *,
                         password: str) -> None:
    """Erase the account after checking its password (see the module docstring).

    Raises
    ------
    UnauthenticatedError
        ``invalid_credentials`` for a wrong password, ``account_deleted`` when already gone.
    """
    async with db.begin():
        user = await db.get(User, user_id)
        if user is None or user.status == "deleted":
            raise UnauthenticatedError(f"account {user_id} was deleted", code="account_deleted")
        password_hash = user.password_hash
    checked = await verify_password(state.hasher, password, password_hash)
    if not checked.ok:
        raise UnauthenticatedError("the password is wrong", code="invalid_credentials")
    async with db.begin():
        await erase_user(db, user_id, now=utcnow())


async def erase_user(db: AsyncSession, user_id: uuid.UUID, *, now: datetime) -> None:
    """Erase a user's personal data inside the caller's transaction."""
    user = await db.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None or user.status == "deleted":
        raise UnauthenticatedError(f"account {user_id} was deleted", code="account_deleted")

    own_sessions = select(PracticeSession.id).where(PracticeSession.student_id == user_id)
    own_tags = select(Tag.id).where(Tag.owner_id == user_id)
    own_links = select(TeacherStudentLink.id).where(
        or_(TeacherStudentLink.teacher_id == user_id, TeacherStudentLink.student_id == user_id)
    )
    statements = [
        # practice data (explicitly, not only by the foreign keys' cascades)
        delete(PracticeMetric).where(PracticeMetric.student_id == user_id),
        delete(MetricRollup).where(MetricRollup.student_id == user_id),
        delete(ProcessedEvent).where(ProcessedEvent.user_id == str(user_id)),
        delete(UserAchievement).where(UserAchievement.user_id == user_id),
        delete(UserChallenge).where(UserChallenge.user_id == user_id),
        delete(ReputationGrant).where(ReputationGrant.user_id == user_id),
        delete(SessionFeedback).where(SessionFeedback.session_id.in_(own_sessions)),
        delete(SessionTag).where(SessionTag.session_id.in_(own_sessions)),
        delete(PracticeSegment).where(PracticeSegment.session_id.in_(own_sessions)),
        delete(PracticeSession).where(PracticeSession.student_id == user_id),
        delete(SessionTag).where(SessionTag.tag_id.in_(own_tags)),
        update(PracticeSegment).where(PracticeSegment.piece_id.in_(own_tags))
        .values(piece_id=None),
        delete(Tag).where(Tag.owner_id == user_id),
        # teaching
        update(SessionFeedback).where(SessionFeedback.teacher_id == user_id)
        .values(teacher_id=None),
        delete(MinorConsent).where(MinorConsent.link_id.in_(own_links)),
        update(MinorConsent).where(MinorConsent.recorded_by == user_id)
        .values(recorded_by=None),
        update(TeacherStudentLink)
        .where(or_(TeacherStudentLink.teacher_id == user_id,
                   TeacherStudentLink.student_id == user_id),
               TeacherStudentLink.status == "active")
        .values(status="ended", ended_at=now),
        delete(InviteCode).where(InviteCode.teacher_id == user_id),
        # accounts and sync
        delete(RefreshToken).where(RefreshToken.user_id == user_id),
        delete(PasswordResetToken).where(PasswordResetToken.user_id == user_id),
        delete(IdempotencyRecord).where(IdempotencyRecord.user_id == user_id),
        delete(StudentProfile).where(StudentProfile.user_id == user_id),
        delete(TeacherProfile).where(TeacherProfile.user_id == user_id),
    ]
    for stmt in statements:
        await db.execute(stmt.execution_options(synchronize_session=False))
    user.email = deleted_email(user_id)
    user.display_name = DELETED_DISPLAY_NAME
    user.password_hash = None
    user.timezone = "UTC"
    user.status = "deleted"
    user.reputation = 0
    user.deleted_at = now
    user.updated_at = now
    await db.flush()
