"""Request and response bodies of the library domain (tags, pieces, the heatmap).

Names and composers are normalised here (NFC, stripped, inner whitespace collapsed; control
characters refused with 422) by :mod:`api.library.rules`, so the service gets clean values.
``global`` is a Python keyword: the attribute is ``is_global``, the JSON member ``global``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.library.rules import (
    MAX_BARS,
    MAX_COMPOSER_CHARS,
    MAX_NAME_CHARS,
    Heatmap,
    normalize_name,
    normalize_optional_text,
)
from api.practice.models import Tag

__all__ = [
    "HeatmapBarResponse",
    "HeatmapResponse",
    "HotSectionResponse",
    "PieceCreateRequest",
    "PieceListResponse",
    "PieceResponse",
    "PieceUpdateRequest",
    "TagCreateRequest",
    "TagListResponse",
    "TagResponse",
    "TagScope",
    "TagUpdateRequest",
]

TagScope = Literal["all", "global", "personal"]

MAX_DURATION_S = 36000.0

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS,
                            description="1..100 characters; stripped, inner whitespace "
                                        "collapsed; unique per owner case-insensitively.")]
Composer = Annotated[str, Field(max_length=MAX_COMPOSER_CHARS,
                                description="Up to 200 characters; blank means none.")]
Difficulty = Annotated[int, Field(ge=1, le=10, strict=True, description="1 (easy) .. 10.")]
TypicalDuration = Annotated[float, Field(gt=0, le=MAX_DURATION_S, allow_inf_nan=False,
                                         description="Seconds, > 0 and <= 36000.")]


def _clean_name(value: str | None) -> str:
    if value is None:
        raise ValueError("name cannot be null; leave it out to keep the current name")
    return normalize_name(value)


def _clean_composer(value: str | None) -> str | None:
    if value is None:
        return None
    return normalize_optional_text(value, field="composer", max_chars=MAX_COMPOSER_CHARS)


class TagCreateRequest(BaseModel):
    """A new tag: personal by default, global (``"global": true``) only for admins."""

    model_config = ConfigDict(
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        json_schema_extra={"examples": [{"name": "Scales"}, {"name": "Warm-up", "global": True}]},
    )

    name: Name
    is_global: bool = Field(default=False, alias="global",
                            description="Make a global tag everyone sees (admins only).")

    _name = field_validator("name")(_clean_name)


class TagUpdateRequest(BaseModel):
    """Rename a tag (its scope cannot change)."""

    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"name": "Major scales"}]})

    name: Name | None = None

    _name = field_validator("name")(_clean_name)

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, by attribute name."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class PieceCreateRequest(TagCreateRequest):
    """A new piece of music: personal by default, global only for admins."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "Clair de lune", "composer": "Claude Debussy", "difficulty": 7,
         "typical_duration_s": 300},
    ]})

    composer: Composer | None = None
    difficulty: Difficulty | None = None
    typical_duration_s: TypicalDuration | None = None

    _composer = field_validator("composer")(_clean_composer)


class PieceUpdateRequest(TagUpdateRequest):
    """Change a piece; send ``null`` to clear composer, difficulty or typical duration."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"difficulty": 8}, {"composer": None},
    ]})

    composer: Composer | None = None
    difficulty: Difficulty | None = None
    typical_duration_s: TypicalDuration | None = None

    _composer = field_validator("composer")(_clean_composer)


class TagResponse(BaseModel):
    """A tag. ``status`` is ``active`` or ``deleted`` (a deleted tag is no longer listed or
    attachable, but sessions that carry it still name it and ``GET`` still shows it)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    id: uuid.UUID
    name: str
    is_global: bool = Field(alias="global")
    owner_id: uuid.UUID | None = Field(description="The owner of a personal tag; null if global.")
    status: Literal["active", "deleted"]
    created_at: datetime

    @classmethod
    def of(cls, tag: Tag) -> TagResponse:
        return cls(id=tag.id, name=tag.name, is_global=tag.owner_id is None,
                   owner_id=tag.owner_id, status=tag.status,
                   created_at=tag.created_at)


class PieceResponse(TagResponse):
    """A piece of music."""

    composer: str | None
    difficulty: int | None
    typical_duration_s: float | None

    @classmethod
    def of(cls, tag: Tag) -> PieceResponse:
        return cls(id=tag.id, name=tag.name, is_global=tag.owner_id is None,
                   owner_id=tag.owner_id, status=tag.status,
                   created_at=tag.created_at, composer=tag.composer,
                   difficulty=tag.difficulty, typical_duration_s=tag.typical_duration_s)


class TagListResponse(BaseModel):
    items: list[TagResponse]
    next_cursor: str | None


class PieceListResponse(BaseModel):
    items: list[PieceResponse]
    next_cursor: str | None


class HeatmapBarResponse(BaseModel):
    bar: int = Field(description="Bar number, from 1.")
    clicks: int = Field(description="Repetitions of segments covering this bar.")
    seconds: float = Field(description="Practice time, each segment's spread over its bars.")
    sessions: int = Field(description="Distinct sessions with a segment on this bar.")
    intensity: float = Field(description="clicks / the highest clicks of any bar (0..1).")


class HotSectionResponse(BaseModel):
    start_bar: int
    end_bar: int
    clicks: int = Field(description="The peak per-bar clicks inside the section.")


class HeatmapResponse(BaseModel):
    """The most practised bars of a piece, across the student's active sessions."""

    model_config = ConfigDict(json_schema_extra={"description": (
        f"`bars` runs from bar 1 to the last bar practised (at most {MAX_BARS}); "
        "`top_sections` are up to 5 maximal runs of bars with intensity >= 0.5, by peak "
        "clicks; totals sum the segments themselves."
    )})

    piece: PieceResponse
    student_id: uuid.UUID
    bars: list[HeatmapBarResponse]
    top_sections: list[HotSectionResponse]
    total_clicks: int
    total_seconds: float

    @classmethod
    def of(cls, piece: Tag, student_id: uuid.UUID, heatmap: Heatmap) -> HeatmapResponse:
        return cls(
            piece=PieceResponse.of(piece),
            student_id=student_id,
            bars=[HeatmapBarResponse(bar=b.bar, clicks=b.clicks, seconds=b.seconds,
                                     sessions=b.sessions, intensity=b.intensity)
                  for b in heatmap.bars],
            top_sections=[HotSectionResponse(start_bar=s.start_bar, end_bar=s.end_bar,
                                             clicks=s.clicks) for s in heatmap.top_sections],
            total_clicks=heatmap.total_clicks,
            total_seconds=heatmap.total_seconds,
        )
