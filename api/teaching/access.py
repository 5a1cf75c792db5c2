"""Who may see a student's data: the rule every domain asks (``can_view_student``).

- an admin sees everything;
- a student sees only their own data;
- a teacher sees a student's data only while an *active* link joins them (a student who
  left takes all their data out of the teacher's view from then on), and, when the student
  is a minor, only while a guardian's consent for that link is recorded and not revoked.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import ColumnElement, bindparam, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import StudentProfile
from api.deps import Principal
from api.errors import ForbiddenError
from api.fastsql import Query
from api.teaching.models import MinorConsent, TeacherStudentLink

__all__ = [
    "can_view_student",
    "ensure_can_view_student",
    "link_consented",
    "visible_student_ids",
    "visible_through_link",
]


def visible_through_link(is_minor: bool | None, consented: bool | None) -> bool:
    """Whether a student linked (actively) to a teacher is visible to them: not a minor, or
    a guardian's consent to the link on record (:func:`link_consented`)."""
    return not is_minor or bool(consented)


def link_consented() -> ColumnElement[bool]:
    """Whether a guardian's consent to the link (``TeacherStudentLink`` in the enclosing
    query) is on record and not revoked: a minor's data is visible to the teacher only then."""
    return exists().where(MinorConsent.link_id == TeacherStudentLink.id,
                          MinorConsent.revoked_at.is_(None))


# Run as plain SQL on PostgreSQL (api.fastsql): a teacher's every read of a student's data
# asks it first. The link's row, whether the student is a minor, and whether a guardian's
# consent to the link is on record, in one round trip.
_LINK = Query(lambda member: (
    select(TeacherStudentLink.id, StudentProfile.is_minor, link_consented().label("consented"))
    .outerjoin(StudentProfile, StudentProfile.user_id == TeacherStudentLink.student_id)
    .where(TeacherStudentLink.teacher_id == bindparam("teacher_id"),
           TeacherStudentLink.student_id == bindparam("student_id"),
           TeacherStudentLink.status == "active")
))
_VISIBLE = Query(lambda member: (
    select(TeacherStudentLink.student_id)
    .join(StudentProfile, StudentProfile.user_id == TeacherStudentLink.student_id)
    .where(TeacherStudentLink.teacher_id == bindparam("teacher_id"),
           TeacherStudentLink.status == "active",
           or_(StudentProfile.is_minor.is_not(True), link_consented()))
))

Access = Literal["allowed", "denied", "consent_required"]


async def _access(db: AsyncSession, viewer: Principal, student_id: uuid.UUID) -> Access:
    if viewer.role == "admin" or viewer.id == student_id:
        return "allowed"
    if viewer.role != "teacher":
        return "denied"
    found = await _LINK.rows(db, teacher_id=viewer.id, student_id=student_id)
    if not found:
        return "denied"
    _link_id, is_minor, consented = found[0]
    return "allowed" if visible_through_link(is_minor, consented) else "consent_required"


async def can_view_student(db: AsyncSession, viewer: Principal, student_id: uuid.UUID) -> bool:
    """True when ``viewer`` may read the data of ``student_id``."""
    return await _access(db, viewer, student_id) == "allowed"


async def ensure_can_view_student(
    db: AsyncSession, viewer: Principal, student_id: uuid.UUID
) -> None:
    """Raise 403 (``consent_required`` for an unconsented minor) unless the viewer may see."""
    access = await _access(db, viewer, student_id)
    if access == "allowed":
        return
    if access == "consent_required":
        raise ForbiddenError(
            f"student {student_id} is a minor: a guardian's consent must be recorded "
            "before their teacher sees their data",
            code="consent_required",
        )
    raise ForbiddenError(f"you may not see the data of student {student_id}")


async def visible_student_ids(db: AsyncSession, teacher_id: uuid.UUID) -> list[uuid.UUID]:
    """The students whose data the teacher may see now (linked, and consented if minors)."""
    return [sid for (sid,) in await _VISIBLE.rows(db, teacher_id=teacher_id)]
