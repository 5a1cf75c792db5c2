"""Accounts: registration, logins and tokens, passwords, profiles, and the admin's tools.

Tokens
    An access token is a short-lived JWT (``settings.security.access_ttl_s``). A refresh
    token is 32 random bytes (URL-safe base64) of which only the SHA-256 is stored; it lives
    ``refresh_ttl_s`` and is single use: :func:`refresh` marks it rotated and issues a child
    in the same family. The rotation is a conditional ``UPDATE ... WHERE rotated_at IS NULL
    AND revoked_at IS NULL``, so of two refreshes of one token only one can win; presenting a
    rotated or revoked token (the loser of such a race included) revokes the whole family
    and answers 401 ``token_reused``. All of it lives in the database, so it holds across
    restarts and workers.

Passwords
    Hashed with argon2 in a worker thread (:mod:`api.accounts.passwords`); logins with an
    unknown e-mail cost the same as with a known one. A changed or reset password revokes
    every refresh token of the account.

Transactions are opened here (``async with db.begin()``), never while a password hashes.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from pwdlib import PasswordHash
from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import (
    PasswordResetToken,
    RefreshToken,
    StudentProfile,
    TeacherProfile,
    User,
)
from api.accounts.passwords import hash_password, verify_password
from api.accounts.rules import (
    check_password,
    check_timezone,
    hash_secret,
    minor_flag_change_allowed,
    normalize_email,
    refresh_action,
    refresh_token_state,
)
from api.db import new_id, utcnow
from api.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthenticatedError,
    UnprocessableError,
)
from api.gamification.service import activate_default_challenges
from api.notify import Notice
from api.pagination import decode_cursor, encode_cursor
from api.state import AppState
from mpt.tokens import ROLES, Role, sign_token

__all__ = [
    "ACCESS_AUDIENCE",
    "IssuedTokens",
    "UserView",
    "admin_update_user",
    "change_password",
    "create_user",
    "get_user_view",
    "list_users",
    "login",
    "logout",
    "refresh",
    "register",
    "request_password_reset",
    "reset_password",
    "revoke_all_refresh_tokens",
    "update_me",
]

ACCESS_AUDIENCE: Final = ["mpt-api", "mpt-engine"]
REFRESH_TOKEN_BYTES: Final = 32
STUDENT_FIELDS: Final = ("is_minor", "instrument", "level")
TEACHER_FIELDS: Final = ("studio_name", "bio", "instruments")


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """A fresh access token and refresh token, with their lifetimes in seconds."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


@dataclass(frozen=True, slots=True)
class UserView:
    """A user with the role profiles it has."""

    user: User
    student: StudentProfile | None
    teacher: TeacherProfile | None


# --------------------------------------------------------------------------------------------
# Accounts


async def create_user(
    db: AsyncSession,
    hasher: PasswordHash,
    *,
    email: str,
    password: str,
    role: Role,
    display_name: str,
    timezone: str = "UTC",
    is_minor: bool = False,
    instrument: str | None = None,
    level: str | None = None,
    studio_name: str | None = None,
    bio: str | None = None,
    instruments: str | None = None,
) -> User:
    """Create an account of any role (the only way to make an admin: ``mpt admin create``).

    Validates like registration, hashes the password off the event loop and commits in its
    own transaction (``db`` must not be in one).

    Parameters
    ----------
    db : AsyncSession
        A session without an open transaction.
    hasher : PasswordHash
        The app's hasher (:func:`api.accounts.passwords.make_hasher`).
    email, password, display_name, timezone : str
        Normalised / checked as at registration.
    role : {"student", "teacher", "admin"}
        A student gets a student profile, a teacher a teacher profile, an admin neither.
    is_minor, instrument, level, studio_name, bio, instruments
        Profile fields of the role.

    Returns
    -------
    User
        The new user.

    Raises
    ------
    UnprocessableError
        An argument is invalid (the message names it).
    ConflictError
        ``email_taken``: an account already has this e-mail.
    """
    if role not in ROLES:
        raise UnprocessableError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    try:
        email = normalize_email(email)
        check_password(password)
        check_timezone(timezone)
    except ValueError as exc:
        raise UnprocessableError(str(exc)) from None
    display_name = display_name.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in display_name):
        raise UnprocessableError(f"display name {display_name!r} has a control character")
    if not 1 <= len(display_name) <= 120:
        raise UnprocessableError(
            f"display name must have 1 to 120 characters, got {len(display_name)}"
        )
    await _ensure_email_free(db, email)
    password_hash = await hash_password(hasher, password)
    async with _email_conflict(email), db.begin():
        view = await _insert_user(
            db, email=email, password_hash=password_hash, role=role,
            display_name=display_name, timezone=timezone,
            profile={"is_minor": is_minor, "instrument": instrument, "level": level,
                     "studio_name": studio_name, "bio": bio, "instruments": instruments},
        )
    return view.user


async def register(
    state: AppState, db: AsyncSession, *, email: str, password: str, role: Role,
    display_name: str, timezone: str, profile: dict[str, Any],
) -> tuple[UserView, IssuedTokens]:
    """Create a student or teacher account (already validated) and log it in."""
    await _ensure_email_free(db, email)
    password_hash = await hash_password(state.hasher, password)
    async with _email_conflict(email), db.begin():
        view = await _insert_user(db, email=email, password_hash=password_hash, role=role,
                                  display_name=display_name, timezone=timezone,
                                  profile=profile)
        if role == "student":
            await activate_default_challenges(db, view.user.id, utcnow())
        tokens = await _issue_tokens(db, state, view.user, family_id=new_id())
    return view, tokens


async def get_user_view(db: AsyncSession, user_id: uuid.UUID) -> UserView:
    """The caller's account; 401 ``account_deleted`` once erased (its tokens still verify)."""
    async with db.begin():
        user = await db.get(User, user_id)
        if user is None:
            raise UnauthenticatedError(f"user {user_id} does not exist", code="token_invalid")
        if user.status == "deleted":
            raise UnauthenticatedError(f"account {user_id} was deleted", code="account_deleted")
        return await _view(db, user)


async def update_me(
    db: AsyncSession, user_id: uuid.UUID, changes: dict[str, Any]
) -> UserView:
    """Apply ``changes`` (fields the caller sent) to their own account and profile."""
    async with db.begin():
        user = await db.get(User, user_id, with_for_update=True)
        if user is None or user.status == "deleted":
            raise UnauthenticatedError(f"account {user_id} was deleted", code="account_deleted")
        view = await _view(db, user)
        allowed = (set(STUDENT_FIELDS) if user.role == "student" else
                   set(TEACHER_FIELDS) if user.role == "teacher" else set())
        foreign = sorted((set(STUDENT_FIELDS) | set(TEACHER_FIELDS)) & changes.keys() - allowed)
        if foreign:
            raise UnprocessableError(f"{', '.join(foreign)} cannot be set for a {user.role}")
        if "display_name" in changes:
            user.display_name = changes["display_name"]
        if "timezone" in changes:
            user.timezone = changes["timezone"]
        if view.student is not None:
            if "is_minor" in changes and not minor_flag_change_allowed(
                current=view.student.is_minor, new=changes["is_minor"],
                actor_is_admin=user.role == "admin",
            ):
                raise ForbiddenError("only an admin may clear is_minor once it is set",
                                     code="forbidden")
            for name in STUDENT_FIELDS:
                if name in changes:
                    setattr(view.student, name, changes[name])
        if view.teacher is not None:
            for name in TEACHER_FIELDS:
                if name in changes:
                    setattr(view.teacher, name, changes[name])
        user.updated_at = utcnow()
        await db.flush()
        return view


# --------------------------------------------------------------------------------------------
# Logins and tokens


async def login(state: AppState, db: AsyncSession, *, email: str, password: str) -> IssuedTokens:
    """Check e-mail and password and start a new token family.

    Raises
    ------
    UnauthenticatedError
        ``invalid_credentials``: no active account with this e-mail, or a wrong password
        (the two take the same time and give the same answer).
    """
    try:
        email = normalize_email(email)
    except ValueError:
        email = ""
    async with db.begin():
        user = (await db.execute(
            select(User).where(User.email == email, User.status == "active")
        )).scalar_one_or_none() if email else None
    checked = await verify_password(state.hasher, password,
                                    user.password_hash if user is not None else None)
    if user is None or not checked.ok:
        raise UnauthenticatedError("wrong e-mail or password", code="invalid_credentials")
    checked_hash = user.password_hash
    async with db.begin():
        current = await db.get(User, user.id, with_for_update=True, populate_existing=True)
        if current is None or current.status != "active":
            raise UnauthenticatedError("wrong e-mail or password", code="invalid_credentials")
        if checked.new_hash is not None and current.password_hash == checked_hash:
            current.password_hash = checked.new_hash
        await _prune_expired(db, current.id)
        return await _issue_tokens(db, state, current, family_id=new_id())


async def refresh(state: AppState, db: AsyncSession, *, refresh_token: str) -> IssuedTokens:
    """Rotate a refresh token: the old one is spent, a child in its family is returned.

    Raises
    ------
    UnauthenticatedError
        ``token_invalid`` (unknown or expired token, or the account is gone) or
        ``token_reused`` (the token was already rotated or revoked: the family is revoked).
    """
    token_hash = hash_secret(refresh_token)
    now = utcnow()
    reused_family: uuid.UUID | None = None
    async with db.begin():
        row = (await db.execute(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )).scalar_one_or_none()
        if row is None:
            raise UnauthenticatedError("refresh token not recognised", code="token_invalid")
        action = refresh_action(refresh_token_state(
            rotated_at=row.rotated_at, revoked_at=row.revoked_at, expires_at=row.expires_at,
            now=now,
        ))
        if action == "refuse_expired":
            raise UnauthenticatedError("refresh token expired; log in again",
                                       code="token_invalid")
        if action == "rotate":
            spent = cast(CursorResult[Any], await db.execute(
                update(RefreshToken)
                .where(RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None),
                       RefreshToken.revoked_at.is_(None))
                .values(rotated_at=now)
                .execution_options(synchronize_session=False)
            ))
            if spent.rowcount != 1:  # a concurrent refresh won: this one is the reuse
                action = "reuse"
        if action == "reuse":
            await _revoke_family(db, row.family_id, reason="reuse", now=now)
            reused_family = row.family_id
        else:
            user = await db.get(User, row.user_id)
            if user is None or user.status != "active":
                raise UnauthenticatedError("the account of this token is gone",
                                           code="token_invalid")
            return await _issue_tokens(db, state, user, family_id=row.family_id)
    raise UnauthenticatedError(
        f"refresh token was already used; every token of its family ({reused_family}) is "
        "revoked: log in again",
        code="token_reused",
    )


async def logout(db: AsyncSession, *, refresh_token: str, all_devices: bool) -> None:
    """Revoke the token's family, or every refresh token of its user (``all_devices``).
    An unknown token changes nothing (logging out twice is fine)."""
    now = utcnow()
    async with db.begin():
        row = (await db.execute(
            select(RefreshToken).where(RefreshToken.token_hash == hash_secret(refresh_token))
        )).scalar_one_or_none()
        if row is None:
            return
        if all_devices:
            await revoke_all_refresh_tokens(db, row.user_id, reason="logout_all", now=now)
        else:
            await _revoke_family(db, row.family_id, reason="logout", now=now)


async def revoke_all_refresh_tokens(
    db: AsyncSession, user_id: uuid.UUID, *, reason: str, now: datetime | None = None
) -> None:
    """Revoke every live refresh token of a user (inside the caller's transaction)."""
    await db.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )


# --------------------------------------------------------------------------------------------
# Passwords


async def change_password(
    state: AppState, db: AsyncSession, user_id: uuid.UUID, *, current_password: str,
    new_password: str,
) -> None:
    """Set a new password after checking the current one; revoke every refresh token.

    Raises
    ------
    UnauthenticatedError
        ``invalid_credentials`` when the current password is wrong, ``account_deleted``.
    """
    async with db.begin():
        user = await db.get(User, user_id)
        if user is None or user.status != "active":
            raise UnauthenticatedError(f"account {user_id} was deleted", code="account_deleted")
        old_hash = user.password_hash
    checked = await verify_password(state.hasher, current_password, old_hash)
    if not checked.ok:
        raise UnauthenticatedError("the current password is wrong", code="invalid_credentials")
    new_hash = await hash_password(state.hasher, new_password)
    now = utcnow()
    async with db.begin():
        done = cast(CursorResult[Any], await db.execute(
            update(User)
            .where(User.id == user_id, User.status == "active", User.password_hash == old_hash)
            .values(password_hash=new_hash, password_changed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        ))
        if done.rowcount != 1:
            raise ConflictError("the password was changed meanwhile; try again")
        await revoke_all_refresh_tokens(db, user_id, reason="password_change", now=now)


async def request_password_reset(
    state: AppState, db: AsyncSession, *, email: str
) -> Notice | None:
    """Store a single-use reset token for an active account and return the message that
    carries it (None when there is no such account: the caller answers the same)."""
    now = utcnow()
    token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    async with db.begin():
        user = (await db.execute(
            select(User).where(User.email == email, User.status == "active")
        )).scalar_one_or_none()
        if user is None:
            return None
        ttl_s = state.settings.security.reset_ttl_s
        db.add(PasswordResetToken(user_id=user.id, token_hash=hash_secret(token),
                                  created_at=now, expires_at=now + timedelta(seconds=ttl_s)))
    minutes = max(1, round(ttl_s / 60))
    link = f"{state.settings.api.public_url.rstrip('/')}/reset-password?token={token}"
    text = (f"Someone asked to reset the password of your Music Practice Tracker account. "
            f"Within {minutes} minutes, open {link} or send this token with a new password "
            f"to POST /api/v1/auth/password/reset: {token}. If it was not you, ignore this.")
    return Notice(to=user.email, kind="password_reset", text=text, token=token)


async def reset_password(
    state: AppState, db: AsyncSession, *, token: str, new_password: str
) -> None:
    """Set a new password with a reset token (spent on use); revoke every refresh token.

    Raises
    ------
    BadRequestError
        ``reset_token_invalid``: unknown, used or expired token, or the account is gone.
    """
    invalid = BadRequestError("the reset token is unknown, used or expired; ask for a new one",
                              code="reset_token_invalid")
    token_hash = hash_secret(token)
    now = utcnow()
    async with db.begin():
        row = (await db.execute(
            select(PasswordResetToken).where(
                PasswordResetToken.token_hash == token_hash,
                PasswordResetToken.used_at.is_(None),
                PasswordResetToken.expires_at > now,
            )
        )).scalar_one_or_none()
    if row is None:
        raise invalid
    new_hash = await hash_password(state.hasher, new_password)
    now = utcnow()
    async with db.begin():
        spent = cast(CursorResult[Any], await db.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None),
                   PasswordResetToken.expires_at > now)
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        ))
        if spent.rowcount != 1:
            raise invalid
        done = cast(CursorResult[Any], await db.execute(
            update(User)
            .where(User.id == row.user_id, User.status == "active")
            .values(password_hash=new_hash, password_changed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        ))
        if done.rowcount != 1:
            raise invalid
        await revoke_all_refresh_tokens(db, row.user_id, reason="password_reset", now=now)


# --------------------------------------------------------------------------------------------
# Admin


async def list_users(
    db: AsyncSession, *, role: str | None, status: str | None, limit: int, cursor: str | None,
) -> tuple[list[UserView], str | None]:
    """A page of users in id order (creation order), filtered by role and status."""
    stmt = select(User).order_by(User.id).limit(limit + 1)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if status is not None:
        stmt = stmt.where(User.status == status)
    if cursor is not None:
        (after_hex,) = decode_cursor(cursor, kind="users", arity=1)
        try:
            after = uuid.UUID(hex=str(after_hex))
        except ValueError:
            raise UnprocessableError(f"cursor {cursor[:40]!r} is not valid here",
                                     code="invalid_cursor") from None
        stmt = stmt.where(User.id > after)
    async with db.begin():
        users = list((await db.execute(stmt)).scalars())
        page = users[:limit]
        views = await _views(db, page)
    next_cursor = encode_cursor("users", [page[-1].id.hex]) if len(users) > limit else None
    return views, next_cursor


async def admin_update_user(
    db: AsyncSession, user_id: uuid.UUID, *, role: Role | None, is_minor: bool | None,
) -> UserView:
    """Change a user's role (creating the profile the new role needs) and/or ``is_minor``.

    Raises
    ------
    NotFoundError
        No such user.
    ConflictError
        The account is deleted, or the change would leave no active admin.
    UnprocessableError
        ``is_minor`` for a user without a student profile.
    """
    async with db.begin():
        user = await db.get(User, user_id, with_for_update=True)
        if user is None:
            raise NotFoundError(f"user {user_id} does not exist")
        if user.status == "deleted":
            raise ConflictError(f"user {user_id} is deleted and cannot be changed")
        if role is not None and role != user.role:
            if user.role == "admin":
                admins = (await db.execute(
                    select(func.count()).select_from(User)
                    .where(User.role == "admin", User.status == "active")
                )).scalar_one()
                if admins <= 1:
                    raise ConflictError(f"user {user_id} is the last admin; make another "
                                        "admin first")
            user.role = role
        view = await _view(db, user)
        if user.role == "student" and view.student is None:
            db.add(StudentProfile(user_id=user.id, is_minor=False))
        if user.role == "teacher" and view.teacher is None:
            db.add(TeacherProfile(user_id=user.id))
        await db.flush()
        view = await _view(db, user)
        if is_minor is not None:
            if view.student is None:
                raise UnprocessableError(
                    f"is_minor applies to students; user {user_id} is a {user.role}"
                )
            view.student.is_minor = is_minor
        user.updated_at = utcnow()
        await db.flush()
        return view


# --------------------------------------------------------------------------------------------
# Helpers


async def _ensure_email_free(db: AsyncSession, email: str) -> None:
    async with db.begin():
        taken = (await db.execute(select(User.id).where(User.email == email))).first()
    if taken is not None:
        raise ConflictError(f"an account with e-mail {email!r} exists", code="email_taken")


@asynccontextmanager
async def _email_conflict(email: str) -> AsyncIterator[None]:
    """Turn the unique-constraint violation of a concurrent registration into 409."""
    try:
        yield
    except IntegrityError:
        raise ConflictError(f"an account with e-mail {email!r} exists",
                            code="email_taken") from None


async def _insert_user(
    db: AsyncSession, *, email: str, password_hash: str, role: Role, display_name: str,
    timezone: str, profile: dict[str, Any],
) -> UserView:
    now = utcnow()
    user = User(id=new_id(), email=email, password_hash=password_hash, role=role,
                display_name=display_name, timezone=timezone, status="active",
                reputation=0, change_seq=0, created_at=now, updated_at=now,
                password_changed_at=now)
    db.add(user)
    await db.flush()
    student = teacher = None
    if role == "student":
        student = StudentProfile(user_id=user.id, is_minor=bool(profile.get("is_minor")),
                                 instrument=profile.get("instrument"),
                                 level=profile.get("level"))
        db.add(student)
    elif role == "teacher":
        teacher = TeacherProfile(user_id=user.id, studio_name=profile.get("studio_name"),
                                 bio=profile.get("bio"), instruments=profile.get("instruments"))
        db.add(teacher)
    await db.flush()
    return UserView(user, student, teacher)


async def _issue_tokens(
    db: AsyncSession, state: AppState, user: User, *, family_id: uuid.UUID
) -> IssuedTokens:
    security = state.settings.security
    access = sign_token(state.private_key, sub=str(user.id), role=cast(Role, user.role),
                        audience=ACCESS_AUDIENCE, ttl_s=security.access_ttl_s)
    secret = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    now = utcnow()
    db.add(RefreshToken(id=new_id(), family_id=family_id, user_id=user.id,
                        token_hash=hash_secret(secret), created_at=now,
                        expires_at=now + timedelta(seconds=security.refresh_ttl_s)))
    await db.flush()
    return IssuedTokens(access_token=access, expires_in=int(security.access_ttl_s),
                        refresh_token=secret, refresh_expires_in=int(security.refresh_ttl_s))


async def _revoke_family(
    db: AsyncSession, family_id: uuid.UUID, *, reason: str, now: datetime
) -> None:
    await db.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )


async def _prune_expired(db: AsyncSession, user_id: uuid.UUID) -> None:
    """Forget a user's refresh tokens that expired a while ago (their state no longer
    matters: an expired token is refused whatever it was)."""
    await db.execute(
        delete(RefreshToken)
        .where(RefreshToken.user_id == user_id,
               RefreshToken.expires_at < utcnow() - timedelta(days=1))
        .execution_options(synchronize_session=False)
    )


async def _view(db: AsyncSession, user: User) -> UserView:
    return (await _views(db, [user]))[0]


async def _views(db: AsyncSession, users: list[User]) -> list[UserView]:
    ids = [u.id for u in users]
    if not ids:
        return []
    students = {p.user_id: p for p in (await db.execute(
        select(StudentProfile).where(StudentProfile.user_id.in_(ids))
    )).scalars()}
    teachers = {p.user_id: p for p in (await db.execute(
        select(TeacherProfile).where(TeacherProfile.user_id.in_(ids))
    )).scalars()}
    return [UserView(u, students.get(u.id), teachers.get(u.id)) for u in users]
