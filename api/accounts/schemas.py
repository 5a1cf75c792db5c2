"""Request and response bodies of the accounts routes.

E-mail addresses are normalised (stripped, lower-cased) and time zones checked against the
IANA database while the request is parsed, so a bad value is a 422 naming it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from api.accounts.rules import (
    PASSWORD_MAX_CHARS,
    check_password,
    check_timezone,
    normalize_email,
)

__all__ = [
    "AccountDeleteRequest",
    "AccountExportResponse",
    "AdminUserUpdateRequest",
    "LoginRequest",
    "LogoutRequest",
    "PasswordChangeRequest",
    "PasswordResetAcceptedResponse",
    "PasswordResetConfirmRequest",
    "PasswordResetRequest",
    "RefreshRequest",
    "RegisterRequest",
    "RegisterResponse",
    "StudentProfileResponse",
    "TeacherProfileResponse",
    "TokenResponse",
    "UserListResponse",
    "UserResponse",
    "UserUpdateRequest",
]

Email = Annotated[str, Field(min_length=3, max_length=400), AfterValidator(normalize_email)]
NewPassword = Annotated[str, Field(max_length=PASSWORD_MAX_CHARS + 1),
                        AfterValidator(check_password)]
# A password being checked, not chosen: any length the policy ever allowed, bounded.
GivenPassword = Annotated[str, Field(min_length=1, max_length=1024)]
TimeZone = Annotated[str, Field(max_length=64), AfterValidator(check_timezone)]
DisplayName = Annotated[str, Field(min_length=1, max_length=120)]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=200)]
UserRole = Literal["student", "teacher", "admin"]

STUDENT_FIELDS = ("is_minor", "instrument", "level")
TEACHER_FIELDS = ("studio_name", "bio", "instruments")


def _single_line(value: str) -> str:
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"control character {bad!r} is not allowed here")
    return value


def _multi_line(value: str) -> str:
    bad = next((c for c in value if (ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127),
               None)
    if bad is not None:
        raise ValueError(f"control character {bad!r} is not allowed here")
    return value


def _strip_display_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("display name may not be blank")
    return value


CleanDisplayName = Annotated[DisplayName, AfterValidator(_single_line),
                             AfterValidator(_strip_display_name)]
Instrument = Annotated[str, Field(max_length=80), AfterValidator(_single_line)]
Level = Annotated[str, Field(max_length=40), AfterValidator(_single_line)]
StudioName = Annotated[str, Field(max_length=120), AfterValidator(_single_line)]
Bio = Annotated[str, Field(max_length=4000), AfterValidator(_multi_line)]
Instruments = Annotated[str, Field(max_length=200), AfterValidator(_single_line)]


class RegisterRequest(BaseModel):
    """A new account. Only students and teachers register; admins are bootstrapped."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"email": "ada@example.com", "password": "correct horse battery", "role": "student",
             "display_name": "Ada", "timezone": "Europe/Vienna", "is_minor": False,
             "instrument": "violin", "level": "intermediate"},
            {"email": "clara@example.com", "password": "a long passphrase", "role": "teacher",
             "display_name": "Clara", "timezone": "Europe/Berlin", "studio_name": "Studio S",
             "bio": "Piano teacher", "instruments": "piano, organ"},
        ]},
    )

    email: Email
    password: NewPassword
    role: Literal["student", "teacher"]
    display_name: CleanDisplayName
    timezone: TimeZone = "UTC"
    is_minor: bool | None = None
    instrument: Instrument | None = None
    level: Level | None = None
    studio_name: StudioName | None = None
    bio: Bio | None = None
    instruments: Instruments | None = None

    @model_validator(mode="after")
    def _fields_fit_role(self) -> RegisterRequest:
        foreign = TEACHER_FIELDS if self.role == "student" else STUDENT_FIELDS
        given = [name for name in foreign if getattr(self, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} cannot be set for a {self.role}")
        return self


class LoginRequest(BaseModel):
    """E-mail and password."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "ada@example.com", "password": "correct horse battery"}
    ]})

    email: Annotated[str, Field(min_length=1, max_length=400)]
    password: GivenPassword


class TokenResponse(BaseModel):
    """An access token (a JWT, ``expires_in`` seconds) and an opaque refresh token
    (``refresh_expires_in`` seconds; single use: each refresh returns a new one)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class StudentProfileResponse(BaseModel):
    is_minor: bool
    instrument: str | None
    level: str | None


class TeacherProfileResponse(BaseModel):
    studio_name: str | None
    bio: str | None
    instruments: str | None


class UserResponse(BaseModel):
    """An account with its role profiles (``student`` / ``teacher``, null when absent)."""

    id: uuid.UUID
    email: str
    role: UserRole
    display_name: str
    timezone: str
    status: Literal["active", "deleted"]
    created_at: datetime
    student: StudentProfileResponse | None = None
    teacher: TeacherProfileResponse | None = None


class RegisterResponse(BaseModel):
    user: UserResponse
    tokens: TokenResponse


class RefreshRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"refresh_token": "kq1Yw2dN0Jw3Qp6mH8sT5xZbV4cR7uE9aL1oI2yU3tM"}
    ]})

    refresh_token: OpaqueToken


class LogoutRequest(BaseModel):
    """The refresh token of this device; ``all_devices`` signs out every device."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"refresh_token": "kq1Yw2dN0Jw3Qp6mH8sT5xZbV4cR7uE9aL1oI2yU3tM", "all_devices": False}
    ]})

    refresh_token: OpaqueToken
    all_devices: bool = False


class PasswordChangeRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"current_password": "correct horse battery", "new_password": "an even longer one"}
    ]})

    current_password: GivenPassword
    new_password: NewPassword


class PasswordResetRequest(BaseModel):
    """Ask for a reset token by e-mail (always answered 202)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com"}]})

    email: Email


class PasswordResetAcceptedResponse(BaseModel):
    """The same answer whether or not an account has the e-mail."""

    detail: str = ("if an active account has this e-mail address, a reset token was sent "
                   "to it")


class PasswordResetConfirmRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"token": "Zx8V...from the message", "new_password": "a brand new passphrase"}
    ]})

    token: OpaqueToken
    new_password: NewPassword


class UserUpdateRequest(BaseModel):
    """Changes to one's own account; absent fields stay. Student fields (``is_minor``,
    ``instrument``, ``level``) only for students, teacher fields (``studio_name``, ``bio``,
    ``instruments``) only for teachers. A student may set ``is_minor`` but not clear it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"display_name": "Ada L.", "timezone": "America/New_York", "level": "advanced"}
        ]},
    )

    display_name: CleanDisplayName | None = None
    timezone: TimeZone | None = None
    is_minor: bool | None = None
    instrument: Instrument | None = None
    level: Level | None = None
    studio_name: StudioName | None = None
    bio: Bio | None = None
    instruments: Instruments | None = None

    @model_validator(mode="after")
    def _required_not_null(self) -> UserUpdateRequest:
        nulled = [name for name in ("display_name", "timezone", "is_minor")
                  if name in self.model_fields_set and getattr(self, name) is None]
        if nulled:
            raise ValueError(f"{', '.join(nulled)} cannot be null")
        return self


class AdminUserUpdateRequest(BaseModel):
    """An admin's change to an account: its role (the missing profile is created) and/or a
    student's ``is_minor``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"role": "teacher"}, {"is_minor": False},
    ]})

    role: UserRole | None = None
    is_minor: bool | None = None


class UserListResponse(BaseModel):
    items: list[UserResponse]
    next_cursor: str | None


class AccountDeleteRequest(BaseModel):
    """The account's password, to confirm erasure."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"password": "correct horse battery"}
    ]})

    password: GivenPassword


class AccountExportResponse(BaseModel):
    """Everything the service holds about the caller (GDPR art. 15/20). Secrets (password
    hash, token hashes) are left out."""

    exported_at: datetime
    account: dict[str, Any]
    student_profile: dict[str, Any] | None
    teacher_profile: dict[str, Any] | None
    practice_sessions: list[dict[str, Any]]
    tags: list[dict[str, Any]]
    pieces: list[dict[str, Any]]
    feedback_received: list[dict[str, Any]]
    feedback_given: list[dict[str, Any]]
    teacher_links: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    invite_codes: list[dict[str, Any]]
    sign_ins: list[dict[str, Any]]
    sync_requests: list[dict[str, Any]]
    practice_metrics: list[dict[str, Any]]
    achievements: list[dict[str, Any]]
    challenges: list[dict[str, Any]]
    reputation_grants: list[dict[str, Any]]
