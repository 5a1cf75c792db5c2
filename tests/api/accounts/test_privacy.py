"""Export of all of a user's data, and erasure of an account (rows written straight through
the other domains' models)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api.accounts.models import (
    PasswordResetToken,
    RefreshToken,
    StudentProfile,
    TeacherProfile,
    User,
)
from api.practice.models import PracticeSegment, PracticeSession, SessionTag, Tag
from api.sync.models import IdempotencyRecord
from api.teaching.models import InviteCode, MinorConsent, SessionFeedback, TeacherStudentLink
from tests.api._support.users import TestUser, make_user
from tests.api.accounts._support import API, code, login, refresh

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 1, 6, 17, 0, tzinfo=UTC)


@dataclass
class World:
    student: TestUser
    teacher: TestUser
    other: TestUser
    session_id: uuid.UUID
    other_session_id: uuid.UUID
    tag_id: uuid.UUID
    piece_id: uuid.UUID
    global_tag_id: uuid.UUID
    link_id: uuid.UUID
    other_link_id: uuid.UUID


async def _world(app: FastAPI) -> World:
    """A minor student with a session (tags, a segment, feedback), their teacher (who also
    teaches another student), a consent, an invite code and a sync record."""
    student = await make_user(app, role="student", is_minor=True)
    teacher = await make_user(app, role="teacher")
    other = await make_user(app, role="student")
    ids = {name: uuid.uuid4() for name in (
        "session", "other_session", "tag", "piece", "global", "link", "other_link")}
    async with app.state.mpt.sessions() as db, db.begin():
        db.add_all([
            Tag(id=ids["tag"], owner_id=student.id, scope=student.id.hex, kind="tag",
                name="Scales", name_key="scales"),
            Tag(id=ids["piece"], owner_id=student.id, scope=student.id.hex, kind="piece",
                name="Air on G", name_key="air on g", composer="Bach", difficulty=4),
            Tag(id=ids["global"], owner_id=None, scope="global", kind="tag", name="Warm-up",
                name_key="warm-up"),
            PracticeSession(id=ids["session"], student_id=student.id, started_at=T0,
                            ended_at=T0 + timedelta(minutes=30), note="felt good",
                            focus="intonation"),
            PracticeSession(id=ids["other_session"], student_id=other.id, started_at=T0),
            TeacherStudentLink(id=ids["link"], teacher_id=teacher.id, student_id=student.id),
            TeacherStudentLink(id=ids["other_link"], teacher_id=teacher.id,
                               student_id=other.id),
        ])
        await db.flush()
        db.add_all([
            SessionTag(session_id=ids["session"], tag_id=ids["tag"]),
            SessionTag(session_id=ids["session"], tag_id=ids["piece"]),
            SessionTag(session_id=ids["session"], tag_id=ids["global"]),
            PracticeSegment(session_id=ids["session"], piece_id=ids["piece"], start_bar=1,
                            end_bar=8, click_count=5, duration_s=120.0),
            SessionFeedback(session_id=ids["session"], teacher_id=teacher.id, at_s=12.5,
                            text="Watch bar 4"),
            SessionFeedback(session_id=ids["other_session"], teacher_id=teacher.id, at_s=3.0,
                            text="Nice tone"),
            MinorConsent(link_id=ids["link"], guardian_name="Grace", recorded_by=student.id,
                         guardian_email="grace@example.com"),
            InviteCode(teacher_id=teacher.id, code="JOIN-ME-1",
                       expires_at=T0 + timedelta(days=7)),
            IdempotencyRecord(user_id=student.id, key="batch-1", request_hash="0" * 64,
                              response={"applied": 1}),
        ])
    return World(student, teacher, other, ids["session"], ids["other_session"], ids["tag"],
                 ids["piece"], ids["global"], ids["link"], ids["other_link"])


async def _delete(client: httpx.AsyncClient, user: TestUser, password: str) -> httpx.Response:
    return await client.request("DELETE", f"{API}/users/me", headers=user.headers,
                                json={"password": password})


async def test_export_has_all_of_a_students_data(client: httpx.AsyncClient, app: FastAPI) -> None:
    w = await _world(app)
    assert (await login(client, w.student.email, w.student.password)).status_code == 200
    response = await client.get(f"{API}/users/me/export", headers=w.student.headers)
    assert response.status_code == 200
    data = response.json()
    assert data["account"]["email"] == w.student.email
    assert "password_hash" not in data["account"]
    assert "argon2" not in response.text
    assert data["student_profile"]["is_minor"] is True and data["teacher_profile"] is None
    (session,) = data["practice_sessions"]
    assert session["id"] == str(w.session_id) and session["note"] == "felt good"
    assert sorted(session["tag_ids"]) == sorted(
        str(i) for i in (w.tag_id, w.piece_id, w.global_tag_id))
    assert [(s["start_bar"], s["end_bar"], s["click_count"]) for s in session["segments"]] == [
        (1, 8, 5)]
    assert [f["text"] for f in session["feedback"]] == ["Watch bar 4"]
    assert [f["text"] for f in data["feedback_received"]] == ["Watch bar 4"]
    assert data["feedback_given"] == []
    assert [t["name"] for t in data["tags"]] == ["Scales"]
    assert [(p["name"], p["composer"]) for p in data["pieces"]] == [("Air on G", "Bach")]
    assert [link["id"] for link in data["teacher_links"]] == [str(w.link_id)]
    assert [c["guardian_name"] for c in data["consents"]] == ["Grace"]
    assert data["invite_codes"] == []
    assert len(data["sign_ins"]) == 1 and "token_hash" not in data["sign_ins"][0]
    assert [r["key"] for r in data["sync_requests"]] == ["batch-1"]


async def test_export_of_a_teacher(client: httpx.AsyncClient, app: FastAPI) -> None:
    w = await _world(app)
    data = (await client.get(f"{API}/users/me/export", headers=w.teacher.headers)).json()
    assert data["practice_sessions"] == [] and data["student_profile"] is None
    assert data["teacher_profile"] is not None
    assert sorted(f["text"] for f in data["feedback_given"]) == ["Nice tone", "Watch bar 4"]
    assert [i["code"] for i in data["invite_codes"]] == ["JOIN-ME-1"]
    assert sorted(link["id"] for link in data["teacher_links"]) == sorted(
        [str(w.link_id), str(w.other_link_id)])
    assert [c["guardian_name"] for c in data["consents"]] == ["Grace"]


async def _count(app: FastAPI, model: type, *where: object) -> int:
    async with app.state.mpt.sessions() as db:
        stmt = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
        return int((await db.execute(stmt)).scalar_one())


async def test_deleting_a_student_erases_their_data(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    w = await _world(app)
    tokens = (await login(client, w.student.email, w.student.password)).json()
    await client.post(f"{API}/auth/password/reset-request", json={"email": w.student.email})

    wrong = await _delete(client, w.student, "not the password")
    assert wrong.status_code == 401 and code(wrong) == "invalid_credentials"
    response = await _delete(client, w.student, w.student.password)
    assert response.status_code == 204

    async with app.state.mpt.sessions() as db:
        user = await db.get(User, w.student.id)
        link = await db.get(TeacherStudentLink, w.link_id)
    assert user is not None
    assert user.email == f"deleted-{w.student.id}@deleted.invalid"
    assert user.display_name == "Deleted user" and user.password_hash is None
    assert user.timezone == "UTC" and user.status == "deleted"
    assert user.deleted_at is not None
    assert link is not None and link.status == "ended" and link.ended_at is not None
    sid = w.student.id
    assert await _count(app, PracticeSession, PracticeSession.student_id == sid) == 0
    assert await _count(app, PracticeSegment) == 0
    assert await _count(app, SessionTag) == 0
    assert await _count(app, SessionFeedback, SessionFeedback.session_id == w.session_id) == 0
    assert await _count(app, Tag, Tag.owner_id == sid) == 0
    assert await _count(app, Tag) == 1  # the global tag stays
    assert await _count(app, RefreshToken, RefreshToken.user_id == sid) == 0
    assert await _count(app, PasswordResetToken, PasswordResetToken.user_id == sid) == 0
    assert await _count(app, IdempotencyRecord, IdempotencyRecord.user_id == sid) == 0
    assert await _count(app, MinorConsent) == 0
    assert await _count(app, StudentProfile, StudentProfile.user_id == sid) == 0
    # the other student's data is untouched
    assert await _count(app, PracticeSession) == 1
    assert await _count(app, SessionFeedback) == 1
    other_link = await _count(app, TeacherStudentLink, TeacherStudentLink.status == "active")
    assert other_link == 1

    # nothing works for the erased account any more
    assert (await login(client, w.student.email, w.student.password)).status_code == 401
    me = await client.get(f"{API}/users/me", headers=w.student.headers)
    assert me.status_code == 401 and code(me) == "account_deleted"
    assert (await refresh(client, tokens["refresh_token"])).status_code == 401
    export = await client.get(f"{API}/users/me/export", headers=w.student.headers)
    assert export.status_code == 401
    assert (await _delete(client, w.student, w.student.password)).status_code == 401
    # and the e-mail can be registered again
    again = await client.post(f"{API}/auth/register", json={
        "email": w.student.email, "password": "a fresh passphrase", "role": "student",
        "display_name": "New"})
    assert again.status_code == 201


async def test_deleting_a_teacher_anonymises_feedback_given(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    w = await _world(app)
    response = await _delete(client, w.teacher, w.teacher.password)
    assert response.status_code == 204
    async with app.state.mpt.sessions() as db:
        feedback = (await db.execute(
            select(SessionFeedback).where(SessionFeedback.session_id == w.other_session_id)
        )).scalar_one()
        links = (await db.execute(select(TeacherStudentLink))).scalars().all()
    assert feedback.teacher_id is None and feedback.text == "Nice tone"
    assert {link.status for link in links} == {"ended"}
    assert await _count(app, InviteCode) == 0
    assert await _count(app, TeacherProfile, TeacherProfile.user_id == w.teacher.id) == 0
    assert await _count(app, SessionFeedback) == 2  # the students keep their feedback
    assert await _count(app, PracticeSession) == 2
    # the minor student's consent on the ended link is gone with the relation
    assert await _count(app, MinorConsent) == 0


async def test_consent_recorded_for_someone_else_outlives_its_recorder(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    w = await _world(app)
    admin = await make_user(app, role="admin")
    async with app.state.mpt.sessions() as db, db.begin():
        consent = (await db.execute(select(MinorConsent))).scalar_one()
        consent.recorded_by = admin.id
    assert (await _delete(client, admin, admin.password)).status_code == 204
    async with app.state.mpt.sessions() as db:
        kept = (await db.execute(select(MinorConsent))).scalar_one()
        link = await db.get(TeacherStudentLink, w.link_id)
    assert kept.recorded_by is None and kept.guardian_name == "Grace"
    assert kept.revoked_at is None and link is not None and link.status == "active"
