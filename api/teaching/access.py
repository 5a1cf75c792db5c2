"""Who may see a student's data: the rule every domain asks (``can_view_student``).

- an admin sees everything;
- a student sees only their own data;
- a teacher sees a student's data only while an *active* link joins them (a student who
  left takes all their data out of the teacher's view from then on), and, when the student
  is a minor, only while a guardian's consent for that link is recorded and not revoked.
"""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import StudentProfile
from api.deps import Principal
from api.errors import ForbiddenError
from api.teaching.models import MinorConsent, TeacherStudentLink

__all__ = ["can_view_student", "ensure_can_view_student", "visible_student_ids"]


async def _active_link_id(
    db: AsyncSession, teacher_id: uuid.UUID, student_id: uuid.UUID
) -> uuid.UUID | None:
    link_id: uuid.UUID | None = (
        await db.execute(
            select(TeacherStudentLink.id).where(
                TeacherStudentLink.teacher_id == teacher_id,
                TeacherStudentLink.student_id == student_id,
                TeacherStudentLink.status == "active",
            )
        )
    ).scalar_one_or_none()
    return link_id


async def can_view_student(db: AsyncSession, viewer: Principal, student_id: uuid.UUID) -> bool:
    """True when ``viewer`` may read the data of ``student_id``."""
    if viewer.role == "admin" or viewer.id == student_id:
        return True
    if viewer.role != "teacher":
        return False
    link_id = await _active_link_id(db, viewer.id, student_id)
    if link_id is None:
        return False
    is_minor = (
        await db.execute(
            select(StudentProfile.is_minor).where(StudentProfile.user_id == student_id)
        )
    ).scalar_one_or_none()
    if not is_minor:
        return True
    consent = await db.execute(
        select(
            exists().where(MinorConsent.link_id == link_id, MinorConsent.revoked_at.is_(None))
        )
    )
    return bool(consent.scalar())


async def ensure_can_view_student(
    db: AsyncSession, viewer: Principal, student_id: uuid.UUID
) -> None:
    """Raise 403 (``consent_required`` for an unconsented minor) unless the viewer may see."""
    if await can_view_student(db, viewer, student_id):
        return
    if viewer.role == "teacher" and await _active_link_id(db, viewer.id, student_id) is not None:
        raise ForbiddenError(
            f"student {student_id} is a minor: a guardian's consent must be recorded "
            "before their teacher sees their data",
            code="consent_required",
        )
    raise ForbiddenError(f"you may not see the data of student {student_id}")


async def visible_student_ids(db: AsyncSession, teacher_id: uuid.UUID) -> list[uuid.UUID]:
    """The students whose data the teacher may see now (linked, and consented if minors)."""
    rows = (
        await db.execute(
            select(TeacherStudentLink.id, TeacherStudentLink.student_id, StudentProfile.is_minor)
            .join(StudentProfile, StudentProfile.user_id == TeacherStudentLink.student_id)
            .where(
                TeacherStudentLink.teacher_id == teacher_id,
                TeacherStudentLink.status == "active",
            )
        )
    ).all()
    minors = [link_id for link_id, _sid, minor in rows if minor]
    consented: set[uuid.UUID] = set()
    if minors:
        consented = set(
            (
                await db.execute(
                    select(MinorConsent.link_id).where(
                        MinorConsent.link_id.in_(minors), MinorConsent.revoked_at.is_(None)
                    )
                )
            ).scalars()
        )
    return [sid for link_id, sid, minor in rows if not minor or link_id in consented]
