"""Request and response bodies of practice sessions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from api.practice.rules import time_window_problem

__all__ = [
    "MAX_SEGMENTS",
    "MAX_TAGS",
    "Mode",
    "SegmentRequest",
    "SegmentResponse",
    "SessionCreateRequest",
    "SessionFields",
    "SessionListResponse",
    "SessionResponse",
    "SessionUpdateRequest",
    "Status",
    "TagKind",
    "TagRef",
]

MAX_TAGS = 50
MAX_SEGMENTS = 200

Mode = Literal["normal", "slow", "performance"]
Status = Literal["active", "deleted"]
TagKind = Literal["tag", "piece"]


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


Focus = Annotated[str | None, Field(max_length=200), AfterValidator(_no_nul)]
Note = Annotated[str | None, Field(max_length=5000), AfterValidator(_no_nul)]
Label = Annotated[str | None, Field(max_length=200), AfterValidator(_no_nul)]
Rating = Annotated[int | None, Field(ge=1, le=5)]
TargetBpm = Annotated[float | None, Field(ge=20, le=400)]
AccuracyPct = Annotated[float | None, Field(ge=0, le=100)]

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


def _unique(ids: list[uuid.UUID]) -> list[uuid.UUID]:
    return list(dict.fromkeys(ids))


TagIds = Annotated[list[uuid.UUID], Field(max_length=MAX_TAGS), AfterValidator(_unique)]


class SegmentRequest(BaseModel):
    """A practised section: bars ``start_bar``..``end_bar`` of a piece (or of nothing named)."""

    model_config = _STRICT

    piece_id: uuid.UUID | None = Field(
        default=None, description="A piece visible to the student (global or their own)."
    )
    label: Label = None
    start_bar: int = Field(ge=1, le=100_000)
    end_bar: int = Field(ge=1, le=100_000)
    click_count: int = Field(default=0, ge=0, le=1_000_000)
    duration_s: float | None = Field(default=None, ge=0, le=86_400)
    tempo_bpm: float | None = Field(default=None, ge=20, le=400)
    accuracy_pct: float | None = Field(
        default=None, ge=0, le=100,
        description="Share of notes on time in this section, percent (as the app measured).",
    )

    @model_validator(mode="after")
    def _bars_in_order(self) -> Self:
        if self.end_bar < self.start_bar:
            raise ValueError(f"end_bar {self.end_bar} is before start_bar {self.start_bar}")
        return self


Segments = Annotated[list[SegmentRequest], Field(max_length=MAX_SEGMENTS)]

_EXAMPLE: dict[str, Any] = {
    "focus": "Scales in thirds, left hand",
    "started_at": "2025-03-01T17:00:00+01:00",
    "ended_at": "2025-03-01T17:40:00+01:00",
    "self_rating": 4,
    "note": "Bar 12 still rushes.",
    "target_bpm": 96,
    "accuracy_pct": 87.5,
    "mode": "slow",
    "tag_ids": [],
    "segments": [{"label": "coda", "start_bar": 9, "end_bar": 16, "click_count": 5,
                  "duration_s": 300, "tempo_bpm": 88,
                  "accuracy_pct": 64}],
}


class SessionFields(BaseModel):
    """The fields a student writes (shared by create and sync)."""

    model_config = _STRICT

    focus: Focus = None
    started_at: AwareDatetime = Field(description="When practice began (with a time zone).")
    ended_at: AwareDatetime | None = Field(
        default=None, description="When it ended: not before started_at, at most 24 h later."
    )
    self_rating: Rating = None
    note: Note = None
    target_bpm: TargetBpm = None
    accuracy_pct: AccuracyPct = None
    mode: Mode = "normal"
    tag_ids: TagIds = Field(default_factory=list, description="Tags and pieces, at most 50.")
    segments: Segments = Field(default_factory=list, description="At most 200.")

    @model_validator(mode="after")
    def _window(self) -> Self:
        problem = time_window_problem(self.started_at, self.ended_at)
        if problem:
            raise ValueError(problem)
        return self


class SessionCreateRequest(SessionFields):
    """A new session of the caller; ``id`` may be chosen by the client (offline creation)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False,
                              json_schema_extra={"examples": [_EXAMPLE]})

    id: uuid.UUID | None = Field(default=None, description="A client-made UUID (optional).")


class SessionUpdateRequest(BaseModel):
    """A partial update: only the fields given change; ``tag_ids``/``segments`` replace."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"self_rating": 5, "note": "Clean at 96 bpm.",
                                         "tag_ids": []}]},
    )

    focus: Focus = None
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    self_rating: Rating = None
    note: Note = None
    target_bpm: TargetBpm = None
    accuracy_pct: AccuracyPct = None
    mode: Mode | None = None
    tag_ids: TagIds | None = None
    segments: Segments | None = None

    @field_validator("started_at", "mode", "tag_ids", "segments")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out but not set to null")
        return value


class TagRef(BaseModel):
    """A tag or piece on a session."""

    id: uuid.UUID
    name: str
    kind: TagKind


class SegmentResponse(BaseModel):
    """A stored segment."""

    id: uuid.UUID
    piece_id: uuid.UUID | None
    label: str | None
    start_bar: int
    end_bar: int
    click_count: int
    duration_s: float | None
    tempo_bpm: float | None
    accuracy_pct: float | None = None


class SessionResponse(BaseModel):
    """A practice session as the API shows it (``duration_s`` is computed)."""

    id: uuid.UUID
    student_id: uuid.UUID
    focus: str | None
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    self_rating: int | None
    note: str | None
    target_bpm: float | None
    accuracy_pct: float | None
    mode: Mode
    status: Status
    tag_ids: list[uuid.UUID]
    tags: list[TagRef]
    segments: list[SegmentResponse]
    feedback_count: int
    created_at: datetime
    updated_at: datetime
    client_updated_at: datetime | None = Field(
        description="The writing device's clock of the last edit (sync compares it)."
    )
    deleted_at: datetime | None
    change_seq: int = Field(description="The owner's change counter at the last write.")


class SessionListResponse(BaseModel):
    """A page of sessions, newest first."""

    items: list[SessionResponse]
    next_cursor: str | None
