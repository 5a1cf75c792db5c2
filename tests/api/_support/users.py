"""Test users made straight in the database (no HTTP round trip), with access tokens signed
by the app's key, so domain tests do not depend on the accounts routes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from fastapi import FastAPI

from api.accounts.models import StudentProfile, TeacherProfile, User
from api.db import new_id
from api.deps import API_AUDIENCE
from mpt.tokens import Role, sign_token

PASSWORD = "correct horse battery staple"
_password_hash: dict[str, str] = {}  # argon2 is slow on purpose: hash PASSWORD once per process


def password_hash(app: FastAPI) -> str:
    """The app hasher's hash of :data:`PASSWORD`, computed once per process."""
    if "hash" not in _password_hash:
        _password_hash["hash"] = app.state.mpt.hasher.hash(PASSWORD)
    return _password_hash["hash"]


@dataclass
class TestUser:
    """A user and a ready ``Authorization`` header."""

    __test__ = False

    id: uuid.UUID
    email: str
    role: Role
    token: str
    password: str = PASSWORD
    headers: dict[str, str] = field(default_factory=dict)


async def make_user(
    app: FastAPI,
    *,
    role: Role = "student",
    email: str | None = None,
    timezone: str = "UTC",
    is_minor: bool = False,
    display_name: str | None = None,
) -> TestUser:
    """Insert a user (with its role profile) and sign an access token for it."""
    state = app.state.mpt
    user_id = new_id()
    email = email or f"{role}-{user_id.hex}@example.com"
    async with state.sessions() as session, session.begin():
        session.add(User(
            id=user_id, email=email, role=role, timezone=timezone,
            display_name=display_name or f"{role} {user_id.hex[:6]}",
            password_hash=password_hash(app),
        ))
        await session.flush()
        if role == "student":
            session.add(StudentProfile(user_id=user_id, is_minor=is_minor))
        elif role == "teacher":
            session.add(TeacherProfile(user_id=user_id))
    return signed_in(app, user_id=user_id, email=email, role=role)


def signed_in(app: FastAPI, *, user_id: uuid.UUID, email: str, role: Role) -> TestUser:
    """A :class:`TestUser` with an access token signed by the app's key (30 min)."""
    token = sign_token(app.state.mpt.private_key, sub=str(user_id), role=role,
                       audience=[API_AUDIENCE, "mpt-engine"], ttl_s=1800)
    return TestUser(id=user_id, email=email, role=role, token=token,
                    headers={"Authorization": f"Bearer {token}"})
