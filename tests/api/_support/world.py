"""A ready-made cast for authorization tests, inserted straight through the models.

``await build_world(app)`` (inside a test that uses ``client``, so the lifespan runs) gives:

========================  ==============================================================
``student``               an adult student, actively linked to ``teacher``
``other_student``         an adult student linked to nobody
``minor``                 a minor, linked to ``teacher`` with recorded, unrevoked consent
``minor_no_consent``      a minor, linked to ``teacher`` without any consent
``teacher``               the teacher of the three students above
``other_teacher``         a teacher with no links
``former_teacher``        a teacher whose link to ``student`` ended (status ``ended``)
``admin``                 an admin
========================  ==============================================================

``await add_user(app, name, role=..., is_minor=..., timezone=...)`` adds one more user the
same way (fast: the password hash is made once per process).
``await add_session(app, student_id, **fields)`` inserts a practice session (bumping the
student's ``change_seq`` as every practice write does) and returns its id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from fastapi import FastAPI

from api.accounts.models import StudentProfile, TeacherProfile, User
from api.db import new_id, utcnow
from api.practice.changes import next_change_seq
from api.practice.models import PracticeSession
from api.teaching.models import MinorConsent, TeacherStudentLink
from mpt.tokens import Role
from tests.api._support.users import TestUser, make_user, password_hash, signed_in

__all__ = ["World", "add_session", "add_user", "build_world"]


@dataclass
class World:
    """The cast (see the module docstring) and the ids of its links."""

    __test__ = False

    student: TestUser
    other_student: TestUser
    minor: TestUser
    minor_no_consent: TestUser
    teacher: TestUser
    other_teacher: TestUser
    former_teacher: TestUser
    admin: TestUser
    links: dict[str, uuid.UUID]

    def actor(self, name: str) -> TestUser:
        """The member called ``name`` (for parametrized tables)."""
        user = getattr(self, name)
        assert isinstance(user, TestUser), name
        return user


def _test_user(app: FastAPI, user: User) -> TestUser:
    return signed_in(app, user_id=user.id, email=user.email, role=cast(Role, user.role))


_CAST: tuple[tuple[str, Role, bool], ...] = (
    ("student", "student", False),
    ("other_student", "student", False),
    ("minor", "student", True),
    ("minor_no_consent", "student", True),
    ("teacher", "teacher", False),
    ("other_teacher", "teacher", False),
    ("former_teacher", "teacher", False),
    ("admin", "admin", False),
)


async def build_world(app: FastAPI) -> World:
    """Insert the cast and its links in one transaction; ``links`` maps ``student``,
    ``minor``, ``minor_no_consent`` (the teacher's active links) and ``former`` to link ids.

    Users are made like :func:`tests.api._support.users.make_user` makes them (a role
    profile, the shared test password, a signed access token), only faster: one password
    hash per process, one transaction for all.
    """
    hashed = password_hash(app)
    tag = new_id().hex[-8:]
    now = utcnow()
    users = {
        name: User(id=new_id(), email=f"{name}-{tag}@example.com", role=role, timezone="UTC",
                   display_name=name.replace("_", " ").title(), password_hash=hashed)
        for name, role, _minor in _CAST
    }
    links = {"student": new_id(), "minor": new_id(), "minor_no_consent": new_id(),
             "former": new_id()}
    teacher, former = users["teacher"].id, users["former_teacher"].id
    async with app.state.mpt.sessions() as db, db.begin():
        db.add_all(users.values())
        await db.flush()
        for name, role, is_minor in _CAST:
            if role == "student":
                db.add(StudentProfile(user_id=users[name].id, is_minor=is_minor))
            elif role == "teacher":
                db.add(TeacherProfile(user_id=users[name].id))
        db.add_all([
            TeacherStudentLink(id=links["student"], teacher_id=teacher,
                               student_id=users["student"].id, status="active"),
            TeacherStudentLink(id=links["minor"], teacher_id=teacher,
                               student_id=users["minor"].id, status="active"),
            TeacherStudentLink(id=links["minor_no_consent"], teacher_id=teacher,
                               student_id=users["minor_no_consent"].id, status="active"),
            TeacherStudentLink(id=links["former"], teacher_id=former,
                               student_id=users["student"].id, status="ended",
                               linked_at=now - timedelta(days=30), ended_at=now),
        ])
        await db.flush()
        db.add(MinorConsent(link_id=links["minor"], guardian_name="Guardian of Minor",
                            guardian_email="guardian@example.com",
                            recorded_by=users["minor"].id))
    made = {name: _test_user(app, user) for name, user in users.items()}
    return World(**made, links=links)


async def add_user(app: FastAPI, name: str, *, role: Role = "student", is_minor: bool = False,
                   timezone: str = "UTC") -> TestUser:
    """One more user with its role profile (:func:`make_user`).

    ``name`` becomes the display name and, with a random suffix, the e-mail's local part.
    """
    local = "-".join(name.lower().split()) or role
    return await make_user(app, role=role, email=f"{local}-{new_id().hex[-8:]}@example.com",
                           timezone=timezone, is_minor=is_minor, display_name=name)


async def add_session(app: FastAPI, student_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    """Insert a practice session of ``student_id`` and return its id.

    ``fields`` are :class:`~api.practice.models.PracticeSession` columns; ``started_at``
    defaults to an hour ago and ``ended_at`` to 30 minutes after it (pass ``ended_at=None``
    for an open session). The student's ``change_seq`` is bumped in the same transaction.
    """
    fields.setdefault("id", new_id())
    fields.setdefault("started_at", utcnow() - timedelta(hours=1))
    if "ended_at" not in fields:
        fields["ended_at"] = fields["started_at"] + timedelta(minutes=30)
    async with app.state.mpt.sessions() as db, db.begin():
        seq = await next_change_seq(db, student_id)
        db.add(PracticeSession(student_id=student_id, change_seq=seq, **fields))
    session_id: uuid.UUID = fields["id"]
    return session_id
