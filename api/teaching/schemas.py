"""Request and response bodies of the teaching routes: invites, links, consent, the
teacher's dashboard and timestamped feedback."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.accounts.rules import normalize_email

__all__ = [
    "ConsentResponse",
    "ConsentStatus",
    "ConsentUpsertRequest",
    "DashboardResponse",
    "DashboardSession",
    "DashboardStudent",
    "FeedbackCreateRequest",
    "FeedbackListResponse",
    "FeedbackResponse",
    "FeedbackUpdateRequest",
    "InviteCreateRequest",
    "InviteListResponse",
    "InviteResponse",
    "InviteStatus",
    "LinkCreateRequest",
    "StudentLinkListResponse",
    "StudentLinkResponse",
    "TeacherLinkListResponse",
    "TeacherLinkResponse",
    "WeekAccuracy",
    "WeekMinutes",
]

FEEDBACK_MAX_CHARS = 2000
MAX_AT_S = 86_400.0

InviteStatus = Literal["usable", "revoked", "expired", "used_up"]
ConsentStatus = Literal["not_required", "granted", "missing"]


def _text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    if not value.strip():
        raise ValueError("text may not be blank")
    return value


def _name(value: str) -> str:
    value = _text(value).strip()
    if any(ord(ch) < 32 for ch in value):
        raise ValueError(f"name {value!r} contains a control character")
    return value


FeedbackText = Annotated[str, Field(min_length=1, max_length=FEEDBACK_MAX_CHARS),
                         AfterValidator(_text)]
AtSeconds = Annotated[float, Field(ge=0, le=MAX_AT_S,
                                   description="Seconds from the session's start.")]


# --- invites -------------------------------------------------------------------------------


class InviteCreateRequest(BaseModel):
    """A new invite code of the calling teacher."""

    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"max_uses": 5,
                                                               "expires_in_days": 14}]})

    max_uses: int = Field(default=1, ge=1, le=100, description="How many students may use it.")
    expires_in_days: int = Field(default=14, ge=1, le=90, description="Valid for this long.")


class InviteResponse(BaseModel):
    """An invite code; ``state`` says whether it can still be redeemed."""

    id: uuid.UUID
    code: str = Field(description="8 characters, no look-alikes; case does not matter.")
    max_uses: int
    used_count: int
    status: Literal["active", "revoked"]
    state: InviteStatus
    created_at: datetime
    expires_at: datetime


class InviteListResponse(BaseModel):
    """A page of the teacher's invites, newest first."""

    items: list[InviteResponse]
    next_cursor: str | None


# --- links ---------------------------------------------------------------------------------


class LinkCreateRequest(BaseModel):
    """A code to redeem (typed by the student; case, spaces and dashes do not matter)."""

    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"code": "K7PX-3MQA"}]})

    code: str = Field(min_length=1, max_length=32)


class TeacherLinkResponse(BaseModel):
    """One of the student's teachers."""

    link_id: uuid.UUID
    teacher_id: uuid.UUID
    display_name: str
    status: Literal["active", "ended"]
    linked_at: datetime
    ended_at: datetime | None
    consent_status: ConsentStatus


class TeacherLinkListResponse(BaseModel):
    """The student's current teachers, in the order they were linked."""

    items: list[TeacherLinkResponse]
    next_cursor: str | None


class StudentLinkResponse(BaseModel):
    """One of the teacher's students; a minor's data is visible only when
    ``consent_status`` is ``granted``."""

    link_id: uuid.UUID
    student_id: uuid.UUID
    display_name: str
    is_minor: bool
    consent_status: ConsentStatus
    linked_at: datetime


class StudentLinkListResponse(BaseModel):
    """The teacher's current students, in the order they were linked."""

    items: list[StudentLinkResponse]
    next_cursor: str | None


# --- consent -------------------------------------------------------------------------------


class ConsentUpsertRequest(BaseModel):
    """A guardian's consent for the linked teacher to see a minor's practice data."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"guardian_name": "Maria Rossi",
                                         "guardian_email": "maria.rossi@example.com"}]},
    )

    guardian_name: Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_name)]
    guardian_email: Annotated[str, Field(min_length=3, max_length=320),
                              AfterValidator(normalize_email)]


class ConsentResponse(BaseModel):
    """A recorded consent (``revoked_at`` set once revoked)."""

    id: uuid.UUID
    link_id: uuid.UUID
    student_id: uuid.UUID
    teacher_id: uuid.UUID
    guardian_name: str
    guardian_email: str
    recorded_by: uuid.UUID | None
    granted_at: datetime
    revoked_at: datetime | None


# --- dashboard -----------------------------------------------------------------------------


class DashboardSession(BaseModel):
    """A recent practice session, as the dashboard shows it."""

    id: uuid.UUID
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    focus: str | None
    mode: str
    target_bpm: float | None
    accuracy_pct: float | None
    self_rating: int | None


class WeekMinutes(BaseModel):
    """Minutes practised in the ISO week starting ``week_start`` (the student's Monday)."""

    week_start: date
    minutes: float
    sessions: int


class WeekAccuracy(BaseModel):
    """Mean accuracy of the week's sessions that carry one (null if none)."""

    week_start: date
    mean_accuracy_pct: float | None


class DashboardStudent(BaseModel):
    """One linked student. When ``consent_required`` is true (a minor without a guardian's
    consent) the data fields are null."""

    student_id: uuid.UUID
    display_name: str
    is_minor: bool
    consent_required: bool
    timezone: str
    recent_sessions: list[DashboardSession] | None = Field(
        description="The 5 most recent sessions, newest first.")
    minutes_per_week: list[WeekMinutes] | None = Field(
        description="Oldest week first; weeks in the student's time zone.")
    accuracy_trend: list[WeekAccuracy] | None
    accuracy_slope_pct_per_week: float | None = Field(
        description="Least-squares slope over weeks with data (null if fewer than 2).")


class DashboardResponse(BaseModel):
    """The teacher's overview of every actively linked student."""

    weeks: int
    generated_at: datetime
    students: list[DashboardStudent]


# --- feedback ------------------------------------------------------------------------------


class FeedbackCreateRequest(BaseModel):
    """A remark at ``at_s`` seconds into the session."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False,
        json_schema_extra={"examples": [{"at_s": 754.5,
                                         "text": "Listen to the left hand here: it rushes."}]},
    )

    at_s: AtSeconds
    text: FeedbackText


class FeedbackUpdateRequest(BaseModel):
    """A change of the remark's text or position (fields left out stay)."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False,
        json_schema_extra={"examples": [{"text": "Better at bar 12 after the slow pass."}]},
    )

    at_s: AtSeconds | None = None
    text: FeedbackText | None = None


class FeedbackResponse(BaseModel):
    """A teacher's remark on a session (``teacher_id`` null once the author was erased)."""

    id: uuid.UUID
    session_id: uuid.UUID
    teacher_id: uuid.UUID | None
    teacher_display_name: str | None
    at_s: float
    text: str
    created_at: datetime
    updated_at: datetime


class FeedbackListResponse(BaseModel):
    """A page of a session's feedback, ordered by ``at_s``."""

    items: list[FeedbackResponse]
    next_cursor: str | None
