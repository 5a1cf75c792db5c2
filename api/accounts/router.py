"""HTTP routes of the accounts domain (thin: validate, rate-limit, call the service).

``/auth/*`` registers, logs in (JSON or the OAuth2 password form), refreshes, logs out and
handles passwords; ``/users/me*`` is the caller's account, its export and its erasure;
``/admin/users*`` is for admins. Login, registration and reset requests are rate-limited per
client address, and login and reset requests also per e-mail address.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from api.accounts import privacy, service
from api.accounts.rules import hash_secret, normalize_email
from api.accounts.schemas import (
    AccountDeleteRequest,
    AccountExportResponse,
    AdminUserUpdateRequest,
    LoginRequest,
    LogoutRequest,
    PasswordChangeRequest,
    PasswordResetAcceptedResponse,
    PasswordResetConfirmRequest,
    PasswordResetRequest,
    RefreshRequest,
    RegisterRequest,
    RegisterResponse,
    StudentProfileResponse,
    TeacherProfileResponse,
    TokenResponse,
    UserListResponse,
    UserResponse,
    UserUpdateRequest,
)
from api.deps import (
    CurrentUser,
    Principal,
    ReadSessionDep,
    SessionDep,
    StateDep,
    client_address,
    require_role,
)
from api.errors import ForbiddenError
from api.notify import Notice, Notifier
from api.openapi import Responses, problem
from api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery
from api.ratelimit import Decision, enforce, rate_limit_headers
from api.state import AppState

__all__ = ["router"]

log = logging.getLogger("api.accounts")
router = APIRouter()

AdminUser = Annotated[Principal, Depends(require_role("admin"))]




RATE_LIMITED: Responses = {429: problem("Too many requests (`rate_limited`); see `Retry-After`")}
UNAUTHENTICATED: Responses = {401: problem("No valid access token, or the account was deleted "
                                 "(`account_deleted`)")}
INVALID_BODY: Responses = {422: problem("The body is invalid (`validation_failed`)")}


# --------------------------------------------------------------------------------------------
# Helpers


async def _limit(state: AppState, response: Response,
                 checks: list[tuple[str, str, int, int]]) -> None:
    """Count the request against each ``(name, key, limit, window_s)``; 429 when one is
    exhausted, else the tightest limit's headers on the response."""
    if not state.settings.api.rate_limits.enabled:
        return
    decisions: list[Decision] = []
    for name, key, limit, window_s in checks:
        decisions.append(await enforce(state.limiter, name, key, limit=limit,
                                       window_s=window_s))
    tightest = min(decisions, key=lambda d: (d.remaining, -d.reset_s))
    response.headers.update(rate_limit_headers(tightest))


def _email_key(raw: str) -> str:
    """A rate-limit key for an e-mail address (hashed: no addresses in Redis)."""
    try:
        email = normalize_email(raw)
    except ValueError:
        email = raw.strip().lower()
    return "email:" + hash_secret(email)[:32]


async def _login_limits(state: AppState, request: Request, response: Response,
                        email: str) -> None:
    per_min = state.settings.api.rate_limits.login_per_min
    await _limit(state, response, [
        ("login", "ip:" + client_address(request), per_min, 60),
        ("login", _email_key(email), per_min, 60),
    ])


def _tokens(issued: service.IssuedTokens) -> TokenResponse:
    return TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in,
                         refresh_token=issued.refresh_token,
                         refresh_expires_in=issued.refresh_expires_in)


def _user(view: service.UserView) -> UserResponse:
    user, student, teacher = view.user, view.student, view.teacher
    return UserResponse(
        id=user.id, email=user.email, role=user.role,
        display_name=user.display_name, timezone=user.timezone,
        status=user.status,
        created_at=user.created_at,
        student=StudentProfileResponse(is_minor=student.is_minor,
                                       instrument=student.instrument, level=student.level)
        if student is not None else None,
        teacher=TeacherProfileResponse(studio_name=teacher.studio_name, bio=teacher.bio,
                                       instruments=teacher.instruments)
        if teacher is not None else None,
    )


async def _send(notifier: Notifier, notice: Notice) -> None:
    try:
        await notifier.send(notice)
    except Exception:  # the caller already has its 202; the failure must reach the log
        log.exception("could not send the %s notice", notice.kind)


# --------------------------------------------------------------------------------------------
# /auth


@router.post(
    "/auth/register", status_code=status.HTTP_201_CREATED, response_model=RegisterResponse,
    tags=["auth"], summary="Register as a student or teacher",
    responses={409: problem("The e-mail has an account (`email_taken`)"),
               **INVALID_BODY, **RATE_LIMITED},
)
async def register(body: RegisterRequest, request: Request, response: Response,
                   state: StateDep, db: SessionDep) -> RegisterResponse:
    """Create an account and log it in. Admins cannot register (they are bootstrapped with
    ``mpt admin create``)."""
    limits = state.settings.api.rate_limits
    await _limit(state, response, [
        ("register", "ip:" + client_address(request), limits.register_per_hour, 3600),
    ])
    profile = body.model_dump(include={"is_minor", "instrument", "level", "studio_name",
                                       "bio", "instruments"})
    view, issued = await service.register(
        state, db, email=body.email, password=body.password, role=body.role,
        display_name=body.display_name, timezone=body.timezone, profile=profile,
    )
    return RegisterResponse(user=_user(view), tokens=_tokens(issued))


@router.post(
    "/auth/login", response_model=TokenResponse, tags=["auth"], summary="Log in (JSON)",
    responses={401: problem("Wrong e-mail or password (`invalid_credentials`)"),
               **RATE_LIMITED},
)
async def login(body: LoginRequest, request: Request, response: Response, state: StateDep,
                db: SessionDep) -> TokenResponse:
    """Exchange e-mail and password for an access token and a refresh token."""
    await _login_limits(state, request, response, body.email)
    return _tokens(await service.login(state, db, email=body.email, password=body.password))


@router.post(
    "/auth/token", response_model=TokenResponse, tags=["auth"],
    summary="Log in (OAuth2 password form)",
    responses={401: problem("Wrong e-mail or password (`invalid_credentials`)"),
               **RATE_LIMITED},
)
async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request,
                response: Response, state: StateDep, db: SessionDep) -> TokenResponse:
    """The OAuth2 password grant (``username`` is the e-mail), for the docs' Authorize
    button and OAuth2 clients."""
    await _login_limits(state, request, response, form.username)
    return _tokens(await service.login(state, db, email=form.username,
                                       password=form.password))


@router.post(
    "/auth/refresh", response_model=TokenResponse, tags=["auth"],
    summary="Rotate a refresh token",
    responses={401: problem("Unknown or expired token (`token_invalid`), or a token used "
                             "twice (`token_reused`: its whole family is revoked)")},
)
async def refresh(body: RefreshRequest, state: StateDep, db: SessionDep) -> TokenResponse:
    """Spend a refresh token for a new access token and a new refresh token. Each refresh
    token works once; presenting it again signs out every device of its login."""
    return _tokens(await service.refresh(state, db, refresh_token=body.refresh_token))


@router.post(
    "/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"],
    summary="Log out this device (or all devices)",
)
async def logout(body: LogoutRequest, db: SessionDep) -> None:
    """Revoke the refresh token's login, or every login of its account (``all_devices``).
    Access tokens already issued run out by themselves."""
    await service.logout(db, refresh_token=body.refresh_token, all_devices=body.all_devices)


@router.post(
    "/auth/password/change", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"],
    summary="Change the password",
    responses={401: problem("Not logged in, or the current password is wrong "
                             "(`invalid_credentials`)"), **INVALID_BODY},
)
async def change_password(body: PasswordChangeRequest, user: CurrentUser, state: StateDep,
                          db: SessionDep) -> None:
    """Set a new password (the current one is needed); every device is logged out."""
    await service.change_password(state, db, user.id, current_password=body.current_password,
                                  new_password=body.new_password)
    state.user_gate.forget(user.id)


@router.post(
    "/auth/password/reset-request", status_code=status.HTTP_202_ACCEPTED,
    response_model=PasswordResetAcceptedResponse, tags=["auth"],
    summary="Ask for a password reset token", responses={**INVALID_BODY, **RATE_LIMITED},
)
async def request_password_reset(body: PasswordResetRequest, request: Request,
                                 response: Response, background: BackgroundTasks,
                                 state: StateDep, db: SessionDep) -> PasswordResetAcceptedResponse:
    """Always 202: if an active account has this e-mail, a single-use token is sent to it."""
    per_hour = state.settings.api.rate_limits.reset_per_hour
    await _limit(state, response, [
        ("reset", "ip:" + client_address(request), per_hour, 3600),
        ("reset", _email_key(body.email), per_hour, 3600),
    ])
    notice = await service.request_password_reset(state, db, email=body.email)
    if notice is not None:
        background.add_task(_send, state.notifier, notice)
    return PasswordResetAcceptedResponse()


@router.post(
    "/auth/password/reset", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"],
    summary="Set a new password with a reset token",
    responses={400: problem("Unknown, used or expired token (`reset_token_invalid`)"),
               **INVALID_BODY},
)
async def reset_password(body: PasswordResetConfirmRequest, state: StateDep,
                         db: SessionDep) -> None:
    """Spend a reset token to set a new password; every device is logged out."""
    await service.reset_password(state, db, token=body.token, new_password=body.new_password)


# --------------------------------------------------------------------------------------------
# /users/me


@router.get("/users/me", response_model=UserResponse, tags=["users"],
            summary="The caller's account", responses=UNAUTHENTICATED)
async def read_me(user: CurrentUser, db: ReadSessionDep) -> UserResponse:
    return _user(await service.get_user_view(db, user.id))


@router.patch(
    "/users/me", response_model=UserResponse, tags=["users"],
    summary="Change the caller's account",
    responses={**UNAUTHENTICATED,
               403: problem("A student tried to clear `is_minor` (only an admin may)"),
               **INVALID_BODY},
)
async def update_me(body: UserUpdateRequest, user: CurrentUser, db: SessionDep) -> UserResponse:
    """Display name, time zone and the fields of the caller's role."""
    changes = body.model_dump(exclude_unset=True)
    return _user(await service.update_me(db, user.id, changes))


@router.get(
    "/users/me/export", response_model=AccountExportResponse, tags=["users"],
    summary="Export all of the caller's data", responses=UNAUTHENTICATED,
)
async def export_me(user: CurrentUser, db: SessionDep) -> dict[str, Any]:
    """Account, profiles, practice sessions (with tags, segments and feedback), personal
    tags and pieces, feedback received and given, teacher links, consents, invite codes,
    logins and sync requests, as JSON."""
    return await privacy.export_account(db, user.id)


@router.delete(
    "/users/me", status_code=status.HTTP_204_NO_CONTENT, tags=["users"],
    summary="Erase the caller's account",
    responses={401: problem("Not logged in, or a wrong password (`invalid_credentials`)")},
)
async def delete_me(body: AccountDeleteRequest, user: CurrentUser, state: StateDep,
                    db: SessionDep) -> None:
    """Erase the account and its personal data (the password confirms). Practice data,
    personal tags, tokens and invite codes are deleted, teacher links ended, feedback given
    to others anonymised. This cannot be undone."""
    await privacy.delete_account(state, db, user.id, password=body.password)
    state.user_gate.forget(user.id)


# --------------------------------------------------------------------------------------------
# /admin


async def _current_admin(admin: AdminUser, db: SessionDep) -> Principal:
    """The token says admin; the account must still be an active admin now."""
    view = await service.get_user_view(db, admin.id)
    if view.user.role != "admin":
        raise ForbiddenError(f"this needs the role admin; you are a {view.user.role}")
    return admin


CurrentAdmin = Annotated[Principal, Depends(_current_admin)]


@router.get(
    "/admin/users", response_model=UserListResponse, tags=["admin"], summary="List users",
    responses={**UNAUTHENTICATED, 403: problem("Not an admin")},
)
async def list_users(
    admin: CurrentAdmin, db: ReadSessionDep,
    role: Literal["student", "teacher", "admin"] | None = None,
    account_status: Annotated[Literal["active", "deleted"] | None,
                              Query(alias="status", description="Only this status.")] = None,
    limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None,
) -> UserListResponse:
    """Users in creation order, optionally of one role and/or status."""
    views, next_cursor = await service.list_users(db, role=role, status=account_status,
                                                  limit=limit, cursor=cursor)
    return UserListResponse(items=[_user(v) for v in views], next_cursor=next_cursor)


@router.patch(
    "/admin/users/{user_id}", response_model=UserResponse, tags=["admin"],
    summary="Change a user's role or minor status",
    responses={**UNAUTHENTICATED, 403: problem("Not an admin"),
               404: problem("No such user"),
               409: problem("The user is deleted, or would leave no admin"), **INVALID_BODY},
)
async def update_user(user_id: uuid.UUID, body: AdminUserUpdateRequest, admin: CurrentAdmin,
                      state: StateDep, db: SessionDep) -> UserResponse:
    """Change the role (student, teacher, admin; the new role's profile is created) and/or
    a student's ``is_minor``. A role change ends the user's current access tokens."""
    view = await service.admin_update_user(db, user_id, role=body.role, is_minor=body.is_minor)
    state.user_gate.forget(user_id)
    return _user(view)
