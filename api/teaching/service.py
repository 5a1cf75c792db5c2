"""Teachers and students: invite codes, links, minors' consent, the dashboard, feedback.

Every operation runs in one transaction. Who may see a student's data is decided only by
:mod:`api.teaching.access`. Writes that race are made safe in the database:

- redeeming counts the use with a conditional ``UPDATE ... WHERE used_count < max_uses``
  (so concurrent redemptions never exceed ``max_uses``), after a no-op ``UPDATE`` of the
  student's profile that serialises one student's redemptions (a row lock on PostgreSQL, the
  write lock on SQLite), so a double click cannot make two links;
- feedback writes take the student's change counter first
  (:func:`~api.practice.changes.next_change_seq`) and store it on the session, because a
  session's ``feedback_count`` is part of what offline sync delivers.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVarTuple, cast

from sqlalchemy import Row, Select, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import StudentProfile, User
from api.db import utcnow
from api.deps import Principal
from api.errors import ConflictError, ForbiddenError, NotFoundError, UnprocessableError
from api.fastsql import Member, Query, flushed_connection
from api.pagination import (
    decode_cursor,
    decode_time_id_cursor,
    encode_cursor,
    encode_time_id_cursor,
    keyset_after,
    keyset_before,
    split_page,
)
from api.practice.changes import next_change_seq
from api.practice.models import PracticeSession
from api.teaching.access import (
    ensure_can_view_student,
    link_consented,
    visible_through_link,
)
from api.teaching.models import InviteCode, MinorConsent, SessionFeedback, TeacherStudentLink
from api.teaching.rules import (
    WeekTotals,
    invite_state,
    local_today,
    make_invite_code,
    normalize_code,
    summary_of_weeks,
    week_bounds,
    week_totals,
)
from api.teaching.schemas import (
    ConsentResponse,
    ConsentStatus,
    ConsentUpsertRequest,
    DashboardResponse,
    FeedbackCreateRequest,
    FeedbackListResponse,
    FeedbackResponse,
    FeedbackUpdateRequest,
    InviteCreateRequest,
    InviteListResponse,
    InviteResponse,
    StudentLinkListResponse,
    StudentLinkResponse,
    TeacherLinkListResponse,
    TeacherLinkResponse,
)

__all__ = [
    "RECENT_SESSIONS",
    "create_feedback",
    "create_invite",
    "dashboard",
    "delete_feedback",
    "end_link",
    "list_feedback",
    "list_invites",
    "list_students",
    "list_teachers",
    "record_consent",
    "redeem_invite",
    "revoke_consent",
    "revoke_invite",
    "update_feedback",
]

RECENT_SESSIONS = 5
_CODE_ATTEMPTS = 5


# --- invites -------------------------------------------------------------------------------


def _invite_view(invite: InviteCode, now: datetime) -> InviteResponse:
    state = invite_state(status=invite.status, used_count=invite.used_count,
                         max_uses=invite.max_uses, expires_at=invite.expires_at, now=now)
    return InviteResponse(
        id=invite.id, code=invite.code, max_uses=invite.max_uses, used_count=invite.used_count,
        status="revoked" if invite.status == "revoked" else "active", state=state,
        created_at=invite.created_at, expires_at=invite.expires_at,
    )


async def create_invite(
    db: AsyncSession, teacher: Principal, request: InviteCreateRequest
) -> InviteResponse:
    """A new random code of ``teacher`` (a clash with an existing code is retried)."""
    for attempt in range(_CODE_ATTEMPTS):
        now = utcnow()
        invite = InviteCode(teacher_id=teacher.id, code=make_invite_code(),
                            max_uses=request.max_uses, used_count=0, status="active",
                            created_at=now,
                            expires_at=now + timedelta(days=request.expires_in_days))
        try:
            async with db.begin():
                db.add(invite)
        except IntegrityError:
            if attempt == _CODE_ATTEMPTS - 1:
                raise
            continue
        return _invite_view(invite, now)
    raise AssertionError("unreachable")  # pragma: no cover


async def list_invites(
    db: AsyncSession, teacher: Principal, *, limit: int, cursor: str | None
) -> InviteListResponse:
    """The teacher's invites (all states), newest first."""
    stmt = select(InviteCode).where(InviteCode.teacher_id == teacher.id)
    if cursor:
        after = decode_time_id_cursor(cursor, kind="invites")
        stmt = stmt.where(keyset_before(InviteCode.created_at, InviteCode.id, after))
    rows = (await db.execute(
        stmt.order_by(InviteCode.created_at.desc(), InviteCode.id.desc()).limit(limit + 1)
    )).scalars().all()
    page, next_cursor = split_page(
        rows, limit, lambda r: encode_time_id_cursor("invites", r.created_at, r.id))
    now = utcnow()
    return InviteListResponse(items=[_invite_view(r, now) for r in page],
                              next_cursor=next_cursor)


async def revoke_invite(db: AsyncSession, teacher: Principal, invite_id: uuid.UUID) -> None:
    """Revoke one of the teacher's invites (revoking a revoked one is fine)."""
    async with db.begin():
        invite = (await db.execute(
            select(InviteCode).where(InviteCode.id == invite_id,
                                     InviteCode.teacher_id == teacher.id)
        )).scalar_one_or_none()
        if invite is None:
            raise NotFoundError(f"you have no invite {invite_id}", code="invite_not_found")
        invite.status = "revoked"


# --- links ---------------------------------------------------------------------------------


async def _consented_links(db: AsyncSession, link_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    if not link_ids:
        return set()
    return set((await db.execute(
        select(MinorConsent.link_id).where(MinorConsent.link_id.in_(link_ids),
                                           MinorConsent.revoked_at.is_(None))
    )).scalars())


def _consent_status(is_minor: bool, consented: bool) -> ConsentStatus:
    if not is_minor:
        return "not_required"
    return "granted" if consented else "missing"


async def _student_is_minor(db: AsyncSession, student_id: uuid.UUID) -> bool:
    minor = (await db.execute(
        select(StudentProfile.is_minor).where(StudentProfile.user_id == student_id)
    )).scalar_one_or_none()
    return bool(minor)


async def redeem_invite(
    db: AsyncSession, student: Principal, raw_code: str
) -> tuple[TeacherLinkResponse, bool]:
    """Link ``student`` to the teacher of the code; True when a new link was made.

    Raises 404 ``invite_not_found`` for an unknown code and 409 ``invite_unusable`` for a
    revoked, expired or used-up one; a student already linked to that teacher gets the
    existing link back and no use is counted.
    """
    code = normalize_code(raw_code)
    async with db.begin():
        # serialise this student's redemptions (row lock / SQLite write lock) before reading
        await db.execute(update(StudentProfile).where(StudentProfile.user_id == student.id)
                         .values(is_minor=StudentProfile.is_minor))
        found = (await db.execute(
            select(InviteCode, User.display_name)
            .join(User, User.id == InviteCode.teacher_id)
            .where(InviteCode.code == code, User.status == "active")
        )).one_or_none()
        if found is None:
            raise NotFoundError(f"no invite has the code {raw_code!r}", code="invite_not_found")
        invite, teacher_name = found
        is_minor = await _student_is_minor(db, student.id)
        existing = (await db.execute(
            select(TeacherStudentLink).where(
                TeacherStudentLink.teacher_id == invite.teacher_id,
                TeacherStudentLink.student_id == student.id,
                TeacherStudentLink.status == "active",
            )
        )).scalars().first()
        if existing is not None:
            consented = bool(await _consented_links(db, [existing.id]))
            return _teacher_link_view(existing, teacher_name, is_minor, consented), False
        now = utcnow()
        counted = (await db.execute(
            update(InviteCode)
            .where(InviteCode.id == invite.id, InviteCode.status == "active",
                   InviteCode.expires_at > now, InviteCode.used_count < InviteCode.max_uses)
            .values(used_count=InviteCode.used_count + 1)
            .returning(InviteCode.used_count)
            .execution_options(synchronize_session=False)
        )).scalar_one_or_none()
        if counted is None:
            await db.refresh(invite)
            state = invite_state(status=invite.status, used_count=invite.used_count,
                                 max_uses=invite.max_uses, expires_at=invite.expires_at,
                                 now=now)
            why = {"revoked": "was revoked", "expired": "has expired",
                   "used_up": f"was used {invite.used_count} of {invite.max_uses} times"}
            raise ConflictError(f"invite {raw_code!r} {why.get(state, 'cannot be used')}",
                                code="invite_unusable", extra={"reason": state})
        link = TeacherStudentLink(teacher_id=invite.teacher_id, student_id=student.id,
                                  status="active", linked_at=now)
        db.add(link)
    return _teacher_link_view(link, teacher_name, is_minor, False), True


def _teacher_link_view(link: TeacherStudentLink, name: str, is_minor: bool,
                       consented: bool) -> TeacherLinkResponse:
    return TeacherLinkResponse(
        link_id=link.id, teacher_id=link.teacher_id, display_name=name,
        status="ended" if link.status == "ended" else "active", linked_at=link.linked_at,
        ended_at=link.ended_at, consent_status=_consent_status(is_minor, consented),
    )


_Columns = TypeVarTuple("_Columns")


async def _links_page(
    db: AsyncSession,
    stmt: Select[TeacherStudentLink, *_Columns],
    *,
    kind: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[Row[TeacherStudentLink, *_Columns]], str | None]:
    """A page of ``stmt``'s rows (a link first in each), oldest link first, after ``cursor``
    (of ``kind``); and the next page's cursor."""
    if cursor:
        after = decode_time_id_cursor(cursor, kind=kind)
        stmt = stmt.where(keyset_after(TeacherStudentLink.linked_at, TeacherStudentLink.id,
                                       after))
    rows = (await db.execute(
        stmt.order_by(TeacherStudentLink.linked_at, TeacherStudentLink.id).limit(limit + 1)
    )).all()
    return split_page(
        rows, limit, lambda r: encode_time_id_cursor(kind, r[0].linked_at, r[0].id))


async def list_teachers(
    db: AsyncSession, student: Principal, *, limit: int, cursor: str | None
) -> TeacherLinkListResponse:
    """The student's active links, oldest first."""
    stmt = (
        select(TeacherStudentLink, User.display_name)
        .join(User, User.id == TeacherStudentLink.teacher_id)
        .where(TeacherStudentLink.student_id == student.id,
               TeacherStudentLink.status == "active")
    )
    page, next_cursor = await _links_page(db, stmt, kind="teachers", limit=limit, cursor=cursor)
    is_minor = await _student_is_minor(db, student.id)
    consented = await _consented_links(db, [link.id for link, _ in page])
    return TeacherLinkListResponse(
        items=[_teacher_link_view(link, name, is_minor, link.id in consented)
               for link, name in page],
        next_cursor=next_cursor,
    )


async def list_students(
    db: AsyncSession, teacher: Principal, *, limit: int, cursor: str | None
) -> StudentLinkListResponse:
    """The teacher's active links, oldest first, with each student's consent status."""
    stmt = (
        select(TeacherStudentLink, User.display_name, StudentProfile.is_minor)
        .join(User, User.id == TeacherStudentLink.student_id)
        .outerjoin(StudentProfile, StudentProfile.user_id == TeacherStudentLink.student_id)
        .where(TeacherStudentLink.teacher_id == teacher.id,
               TeacherStudentLink.status == "active")
    )
    page, next_cursor = await _links_page(db, stmt, kind="students", limit=limit, cursor=cursor)
    consented = await _consented_links(db, [link.id for link, _, minor in page if minor])
    return StudentLinkListResponse(
        items=[
            StudentLinkResponse(
                link_id=link.id, student_id=link.student_id, display_name=name,
                is_minor=bool(minor),
                consent_status=_consent_status(bool(minor), link.id in consented),
                linked_at=link.linked_at,
            )
            for link, name, minor in page
        ],
        next_cursor=next_cursor,
    )


async def end_link(db: AsyncSession, *, teacher_id: uuid.UUID, student_id: uuid.UUID) -> None:
    """End the active link of the pair (the teacher sees nothing of the student from now on).

    Raises 404 ``link_not_found`` when they are not actively linked.
    """
    async with db.begin():
        ended = (await db.execute(
            update(TeacherStudentLink)
            .where(TeacherStudentLink.teacher_id == teacher_id,
                   TeacherStudentLink.student_id == student_id,
                   TeacherStudentLink.status == "active")
            .values(status="ended", ended_at=utcnow())
            .returning(TeacherStudentLink.id)
            .execution_options(synchronize_session=False)
        )).scalars().all()
        if not ended:
            raise NotFoundError(
                f"teacher {teacher_id} and student {student_id} are not linked",
                code="link_not_found")


# --- consent -------------------------------------------------------------------------------


def _may_record_consent(caller: Principal, student_id: uuid.UUID) -> None:
    if caller.is_admin or (caller.role == "student" and caller.id == student_id):
        return
    raise ForbiddenError(
        f"only student {student_id} (with their guardian) or an admin may record or revoke "
        f"consent; you are a {caller.role}")


async def _active_link(db: AsyncSession, student_id: uuid.UUID,
                       teacher_id: uuid.UUID) -> TeacherStudentLink:
    links = (await db.execute(
        select(TeacherStudentLink).where(TeacherStudentLink.teacher_id == teacher_id,
                                         TeacherStudentLink.student_id == student_id)
        .order_by(TeacherStudentLink.linked_at.desc())
    )).scalars().all()
    for link in links:
        if link.status == "active":
            return link
    if links:
        raise ConflictError(f"the link of student {student_id} to teacher {teacher_id} has "
                            "ended; consent needs an active link", code="link_ended")
    raise NotFoundError(f"student {student_id} is not linked to teacher {teacher_id}",
                        code="link_not_found")


def _consent_view(consent: MinorConsent, link: TeacherStudentLink) -> ConsentResponse:
    return ConsentResponse(
        id=consent.id, link_id=link.id, student_id=link.student_id, teacher_id=link.teacher_id,
        guardian_name=consent.guardian_name, guardian_email=consent.guardian_email,
        recorded_by=consent.recorded_by, granted_at=consent.granted_at,
        revoked_at=consent.revoked_at,
    )


async def record_consent(
    db: AsyncSession, caller: Principal, student_id: uuid.UUID, teacher_id: uuid.UUID,
    request: ConsentUpsertRequest,
) -> tuple[ConsentResponse, bool]:
    """Record (or replace the guardian details of) the consent on the pair's active link;
    True when a new consent was recorded. It takes effect while the student is a minor."""
    _may_record_consent(caller, student_id)
    async with db.begin():
        link = await _active_link(db, student_id, teacher_id)
        consent = (await db.execute(
            select(MinorConsent).where(MinorConsent.link_id == link.id,
                                       MinorConsent.revoked_at.is_(None))
            .order_by(MinorConsent.granted_at.desc())
        )).scalars().first()
        created = consent is None
        if consent is None:
            consent = MinorConsent(link_id=link.id, granted_at=utcnow())
            db.add(consent)
        consent.guardian_name = request.guardian_name
        consent.guardian_email = request.guardian_email
        consent.recorded_by = caller.id
    return _consent_view(consent, link), created


async def revoke_consent(db: AsyncSession, caller: Principal, student_id: uuid.UUID,
                         teacher_id: uuid.UUID) -> None:
    """Revoke the consent on the pair's active link (404 ``consent_not_found`` if none)."""
    _may_record_consent(caller, student_id)
    async with db.begin():
        link = await _active_link(db, student_id, teacher_id)
        revoked = (await db.execute(
            update(MinorConsent)
            .where(MinorConsent.link_id == link.id, MinorConsent.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .returning(MinorConsent.id)
            .execution_options(synchronize_session=False)
        )).scalars().all()
        if not revoked:
            raise NotFoundError(f"no consent is recorded for student {student_id} and "
                                f"teacher {teacher_id}", code="consent_not_found")


# --- dashboard -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Linked:
    student_id: uuid.UUID
    display_name: str
    timezone: str
    is_minor: bool
    visible: bool  # the rule of api.teaching.access: not a minor, or a guardian consented


# the dashboard's reads (api.fastsql: plain SQL on PostgreSQL)
_LINKED = Query(lambda member: (
    select(User.id, User.display_name, User.timezone, StudentProfile.is_minor,
           link_consented().label("consented"))
    .join(TeacherStudentLink, TeacherStudentLink.student_id == User.id)
    .outerjoin(StudentProfile, StudentProfile.user_id == User.id)
    .where(TeacherStudentLink.teacher_id == bindparam("teacher_id"),
           TeacherStudentLink.status == "active")
    .order_by(User.display_name, User.id)
))
_WINDOW = Query(lambda member: (
    select(PracticeSession.student_id, PracticeSession.started_at,
           PracticeSession.ended_at, PracticeSession.accuracy_pct)
    .where(member(PracticeSession.student_id, "ids"), PracticeSession.status == "active",
           PracticeSession.started_at >= bindparam("since"),
           PracticeSession.started_at < bindparam("until"))
))
# On PostgreSQL the database adds the sessions up per student and week: ``width_bucket``
# over the student's week bounds (computed here, in the student's zone, by the same rule as
# elsewhere: the slice ``$1[lo:hi]`` of one array holding each zone's bounds once) gives the
# week of each session, so a teacher with many students reads a row per student and week
# instead of a row per session.
_WEEK_TOTALS_PG = f"""
SELECT s.student_id, width_bucket(s.started_at, ($1::timestamptz[])[z.lo:z.hi]) AS week,
       count(*),
       coalesce(sum(greatest(0, extract(epoch FROM s.ended_at - s.started_at)))::float8, 0),
       coalesce(sum(s.accuracy_pct)::float8, 0), count(s.accuracy_pct)
FROM {PracticeSession.__tablename__} AS s
JOIN unnest($2::uuid[], $3::int[], $4::int[]) AS z(student_id, lo, hi)
  ON s.student_id = z.student_id
WHERE s.status = 'active' AND s.started_at >= $5 AND s.started_at < $6
GROUP BY s.student_id, week
"""


async def _week_totals(
    db: AsyncSession, bounds_of: dict[uuid.UUID, list[datetime]]
) -> dict[uuid.UUID, list[WeekTotals]]:
    """Each student's :class:`WeekTotals` for the weeks bounded by ``bounds_of[id]`` (every
    list the same length)."""
    weeks = len(next(iter(bounds_of.values()))) - 1
    since = min(bounds[0] for bounds in bounds_of.values())
    until = max(bounds[-1] for bounds in bounds_of.values())
    ids = list(bounds_of)
    conn = await flushed_connection(db)
    if conn.dialect.name != "postgresql":
        points: dict[uuid.UUID, list[tuple[datetime, datetime | None, float | None]]] = (
            defaultdict(list))
        for sid, started_at, ended_at, accuracy in await _WINDOW.rows(
                db, ids=ids, since=since, until=until):
            points[sid].append((started_at, ended_at, accuracy))
        return {sid: week_totals(points[sid], bounds_of[sid]) for sid in ids}
    flat: list[datetime] = []
    first: dict[tuple[datetime, ...], int] = {}  # a zone's bounds -> where they begin (1-based)
    lo: list[int] = []
    for sid in ids:
        key = tuple(bounds_of[sid])
        if key not in first:
            first[key] = len(flat) + 1
            flat.extend(key)
        lo.append(first[key])
    hi = [at + weeks for at in lo]
    totals = {sid: [WeekTotals()] * weeks for sid in ids}
    result = await conn.exec_driver_sql(_WEEK_TOTALS_PG, (flat, ids, lo, hi, since, until))
    rows = cast("list[tuple[uuid.UUID, int, int, float, float, int]]", result.all())
    for sid, week, sessions, seconds, accuracy_sum, accuracy_count in rows:
        if 1 <= week <= weeks:
            totals[sid][week - 1] = WeekTotals(sessions, seconds, accuracy_sum, accuracy_count)
    return totals


def _recent(member: Member) -> Select[
    uuid.UUID, uuid.UUID, datetime, datetime | None, str | None, str, float | None,
    float | None, int | None,
]:
    """Each student's latest ``RECENT_SESSIONS`` active sessions (a window function)."""
    rank = func.row_number().over(
        partition_by=PracticeSession.student_id,
        order_by=(PracticeSession.started_at.desc(), PracticeSession.id.desc()),
    ).label("rank")
    ranked = (select(PracticeSession.id, PracticeSession.student_id,
                     PracticeSession.started_at, PracticeSession.ended_at,
                     PracticeSession.focus, PracticeSession.mode, PracticeSession.target_bpm,
                     PracticeSession.accuracy_pct, PracticeSession.self_rating, rank)
              .where(member(PracticeSession.student_id, "ids"),
                     PracticeSession.status == "active")
              .subquery())
    c = ranked.c
    return (select(c.id, c.student_id, c.started_at, c.ended_at, c.focus, c.mode,
                   c.target_bpm, c.accuracy_pct, c.self_rating)
            .where(c.rank <= RECENT_SESSIONS)
            .order_by(c.student_id, c.started_at.desc(), c.id.desc()))


_RECENT = Query(_recent)


async def dashboard(db: AsyncSession, teacher: Principal, *, weeks: int) -> DashboardResponse:
    """Every actively linked student with their recent sessions and weekly numbers.

    Three queries whatever the number of students: the links with whether a guardian
    consented to each (the rule of :mod:`api.teaching.access`), each student's totals per week (on
    PostgreSQL added up by the database; elsewhere the window's sessions, added up here),
    and the latest sessions per student (a window function).
    """
    now = utcnow()
    linked = [
        _Linked(student_id=sid, display_name=name, timezone=tz, is_minor=bool(minor),
                visible=visible_through_link(minor, consented))
        for sid, name, tz, minor, consented in await _LINKED.rows(db, teacher_id=teacher.id)
    ]
    ids = [s.student_id for s in linked if s.visible]
    today = {s.student_id: local_today(now, s.timezone) for s in linked if s.visible}
    # The response is built as plain data and validated once at the end: a model per
    # session and week (~600 for 20 students) costs three times the one validation.
    recent: dict[uuid.UUID, list[dict[str, object]]] = defaultdict(list)
    totals: dict[uuid.UUID, list[WeekTotals]] = {}
    if ids:
        totals = await _week_totals(db, {
            s.student_id: week_bounds(tz=s.timezone, weeks=weeks, today=today[s.student_id])
            for s in linked if s.visible
        })
        # unpacked: a row's attribute access costs several times its unpacking
        for (session_id, sid, started_at, ended_at, focus, mode, target_bpm, accuracy_pct,
             self_rating) in await _RECENT.rows(db, ids=ids):
            recent[sid].append({
                "id": session_id, "started_at": started_at, "ended_at": ended_at,
                "duration_s": (None if ended_at is None
                               else (ended_at - started_at).total_seconds()),
                "focus": focus, "mode": mode, "target_bpm": target_bpm,
                "accuracy_pct": accuracy_pct, "self_rating": self_rating,
            })
    students: list[dict[str, object]] = []
    for s in linked:
        student: dict[str, object] = {
            "student_id": s.student_id, "display_name": s.display_name,
            "is_minor": s.is_minor, "timezone": s.timezone, "consent_required": not s.visible,
            "recent_sessions": None, "minutes_per_week": None, "accuracy_trend": None,
            "accuracy_slope_pct_per_week": None,
        }
        if s.visible:
            summary = summary_of_weeks(totals[s.student_id], today=today[s.student_id])
            student.update(
                recent_sessions=recent[s.student_id],
                minutes_per_week=[{"week_start": w.week_start, "minutes": w.minutes,
                                   "sessions": w.sessions} for w in summary.weeks],
                accuracy_trend=[{"week_start": w.week_start,
                                 "mean_accuracy_pct": w.mean_accuracy_pct}
                                for w in summary.weeks],
                accuracy_slope_pct_per_week=summary.accuracy_slope_pct_per_week,
            )
        students.append(student)
    return DashboardResponse.model_validate(
        {"weeks": weeks, "generated_at": now, "students": students})


# --- feedback ------------------------------------------------------------------------------


async def _live_session(db: AsyncSession, session_id: uuid.UUID) -> PracticeSession:
    row = (await db.execute(
        select(PracticeSession).where(PracticeSession.id == session_id,
                                      PracticeSession.status == "active")
    )).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"practice session {session_id} does not exist",
                            code="session_not_found")
    return row


def _check_at_s(at_s: float, session: PracticeSession) -> None:
    if session.ended_at is None:
        return
    length_s = (session.ended_at - session.started_at).total_seconds()
    if at_s > length_s:
        raise UnprocessableError(
            f"at_s {at_s:g} is beyond the end of session {session.id} ({length_s:g} s long)",
            code="at_s_beyond_session")


async def _bump_session(db: AsyncSession, session: PracticeSession) -> None:
    """Take the owner's next change number for ``session`` (its feedback count changed)."""
    seq = await next_change_seq(db, session.student_id)
    await db.execute(
        update(PracticeSession).where(PracticeSession.id == session.id)
        .values(change_seq=seq, updated_at=PracticeSession.updated_at)
        .execution_options(synchronize_session=False)
    )


def _feedback_view(row: SessionFeedback, author: str | None) -> FeedbackResponse:
    return FeedbackResponse(
        id=row.id, session_id=row.session_id, teacher_id=row.teacher_id,
        teacher_display_name=author, at_s=row.at_s, text=row.text, created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _author_name(db: AsyncSession, teacher_id: uuid.UUID | None) -> str | None:
    if teacher_id is None:
        return None
    name = (await db.execute(select(User.display_name).where(User.id == teacher_id))
            ).scalar_one_or_none()
    return name


async def create_feedback(
    db: AsyncSession, teacher: Principal, session_id: uuid.UUID,
    request: FeedbackCreateRequest,
) -> FeedbackResponse:
    """A remark by a teacher who may see the session's student."""
    if teacher.role != "teacher":
        raise ForbiddenError(f"only teachers give feedback; you are a {teacher.role}")
    async with db.begin():
        session = await _live_session(db, session_id)
        await ensure_can_view_student(db, teacher, session.student_id)
        _check_at_s(request.at_s, session)
        await _bump_session(db, session)
        now = utcnow()
        row = SessionFeedback(session_id=session.id, teacher_id=teacher.id, at_s=request.at_s,
                              text=request.text, status="active", created_at=now,
                              updated_at=now)
        db.add(row)
        author = await _author_name(db, teacher.id)
    return _feedback_view(row, author)


async def list_feedback(
    db: AsyncSession, viewer: Principal, session_id: uuid.UUID, *, limit: int,
    cursor: str | None,
) -> FeedbackListResponse:
    """The session's live feedback, by ``at_s`` (for whoever may see the student)."""
    session = await _live_session(db, session_id)
    await ensure_can_view_student(db, viewer, session.student_id)
    stmt = (
        select(SessionFeedback, User.display_name)
        .outerjoin(User, User.id == SessionFeedback.teacher_id)
        .where(SessionFeedback.session_id == session_id, SessionFeedback.status == "active")
    )
    if cursor:
        at_raw, id_raw = decode_cursor(cursor, kind="feedback", arity=2)
        try:
            after_at, after_id = float(at_raw), uuid.UUID(hex=str(id_raw))
        except (TypeError, ValueError):
            raise UnprocessableError(f"cursor {cursor[:40]!r} is not valid here",
                                     code="invalid_cursor") from None
        stmt = stmt.where(or_(SessionFeedback.at_s > after_at,
                              and_(SessionFeedback.at_s == after_at,
                                   SessionFeedback.id > after_id)))
    rows = (await db.execute(
        stmt.order_by(SessionFeedback.at_s, SessionFeedback.id).limit(limit + 1)
    )).all()
    page, next_cursor = split_page(
        rows, limit, lambda r: encode_cursor("feedback", [r[0].at_s, r[0].id.hex]))
    return FeedbackListResponse(items=[_feedback_view(row, name) for row, name in page],
                                next_cursor=next_cursor)


async def _own_feedback(
    db: AsyncSession, caller: Principal, session: PracticeSession, feedback_id: uuid.UUID
) -> SessionFeedback:
    await ensure_can_view_student(db, caller, session.student_id)
    row = (await db.execute(
        select(SessionFeedback).where(SessionFeedback.id == feedback_id,
                                      SessionFeedback.session_id == session.id,
                                      SessionFeedback.status == "active")
    )).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"session {session.id} has no feedback {feedback_id}",
                            code="feedback_not_found")
    if not caller.is_admin and row.teacher_id != caller.id:
        raise ForbiddenError(f"only the author of feedback {feedback_id} (or an admin) may "
                             "change or delete it")
    return row


async def update_feedback(
    db: AsyncSession, caller: Principal, session_id: uuid.UUID, feedback_id: uuid.UUID,
    request: FeedbackUpdateRequest,
) -> FeedbackResponse:
    """Change the text or position of a remark (its author, while they may see the
    student, or an admin)."""
    async with db.begin():
        session = await _live_session(db, session_id)
        row = await _own_feedback(db, caller, session, feedback_id)
        if request.at_s is not None:
            _check_at_s(request.at_s, session)
            row.at_s = request.at_s
        if request.text is not None:
            row.text = request.text
        await db.flush()
        author = await _author_name(db, row.teacher_id)
    return _feedback_view(row, author)


async def delete_feedback(
    db: AsyncSession, caller: Principal, session_id: uuid.UUID, feedback_id: uuid.UUID
) -> None:
    """Hide a remark (soft delete; its author, while they may see the student, or an
    admin)."""
    async with db.begin():
        session = await _live_session(db, session_id)
        row = await _own_feedback(db, caller, session, feedback_id)
        await _bump_session(db, session)
        row.status = "deleted"

