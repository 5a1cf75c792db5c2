"""Request and response bodies of offline sync."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from api.practice.rules import EARLIEST, LATEST
from api.practice.schemas import SessionFields, SessionResponse

__all__ = [
    "MAX_BATCH",
    "MAX_PULL",
    "SyncBatchRequest",
    "SyncBatchResponse",
    "SyncChangesResponse",
    "SyncResult",
    "SyncSession",
    "SyncStatus",
    "Tombstone",
]

MAX_BATCH = 500
MAX_PULL = 500

SyncStatus = Literal["created", "updated", "deleted", "unchanged", "conflict", "rejected"]

_EXAMPLE: dict[str, Any] = {
    "sessions": [
        {
            "id": "01956f4e-8a52-7c3e-9b1a-2f4c5d6e7f80",
            "updated_at": "2025-03-01T17:41:02+01:00",
            "deleted": False,
            "focus": "Etude no. 3",
            "started_at": "2025-03-01T17:00:00+01:00",
            "ended_at": "2025-03-01T17:40:00+01:00",
            "self_rating": 4,
            "mode": "normal",
            "tag_ids": [],
            "segments": [{"start_bar": 1, "end_bar": 8, "click_count": 3}],
        },
        {
            "id": "01956f4e-8a52-7c3e-9b1a-2f4c5d6e7f81",
            "updated_at": "2025-03-01T18:00:00+01:00",
            "deleted": True,
            "started_at": "2025-02-27T09:00:00+01:00",
        },
    ]
}


class SyncSession(SessionFields):
    """A device's version of one session: its fields, its id, the device's clock of the
    last edit, and whether the device deleted it (a tombstone)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: uuid.UUID = Field(description="The session's id, made by the client.")
    updated_at: AwareDatetime = Field(description="The device's clock of its last edit.")
    deleted: bool = Field(default=False, description="The device deleted the session.")

    @field_validator("updated_at")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        if not EARLIEST <= value < LATEST:
            raise ValueError(f"{value.isoformat()} is outside {EARLIEST.year}..{LATEST.year}")
        return value


class SyncBatchRequest(BaseModel):
    """Up to 500 sessions changed offline, applied all together or not at all."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    sessions: Annotated[list[SyncSession], Field(max_length=MAX_BATCH)]


class SyncResult(BaseModel):
    """The outcome for one session of a batch.

    ``server`` is the server's version when the item was refused as a ``conflict`` (the
    device should adopt it), else null; ``reason`` explains ``conflict`` and ``rejected``.
    """

    id: uuid.UUID
    status: SyncStatus
    server: SessionResponse | None = None
    reason: str | None = None


class SyncBatchResponse(BaseModel):
    """Per-session outcomes (in the order sent) and the caller's change cursor after them."""

    results: list[SyncResult]
    cursor: str = Field(description="Pass as `since` to GET /sync/changes.")


class Tombstone(BaseModel):
    """A deleted session."""

    id: uuid.UUID
    deleted_at: datetime | None


class SyncChangesResponse(BaseModel):
    """The caller's sessions written after ``since``, in the order they were written."""

    sessions: list[SessionResponse]
    tombstones: list[Tombstone]
    cursor: str = Field(description="The `since` of the next pull.")
    has_more: bool
