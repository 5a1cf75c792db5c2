"""The library's business operations: tags and pieces (one code path, ``kind`` a parameter),
the practice heatmap of a piece, and the global seed data.

Visibility and rights:

- everyone sees the global tags (``owner_id`` null, ``scope`` ``"global"``) and their own
  personal ones (``scope`` = their id in hex); admins too see only global ones plus their own.
  Another user's personal tag is answered with 404, never 403;
- only admins create global tags (403 otherwise); the owner changes and deletes a personal
  tag, an admin a global one; a non-admin changing a global tag gets 403;
- names are unique per scope and kind case-insensitively (409 ``tag_exists``). Scopes are
  separate: two students may both have "Scales", and a personal "Scales" may sit beside the
  global one (an admin adding a global tag never breaks anyone's personal tags);
- delete is soft: ``status`` becomes ``deleted``; the tag leaves the lists, can no longer be
  attached (:func:`attachable_tags`), and stays on the sessions that carry it — ``GET`` by id
  still shows it with ``status: "deleted"`` so clients can render it struck through. Its
  ``name_key`` is replaced by ``" deleted <id hex>"`` (a live key never starts with a space),
  which frees the name for a new tag under the unique index.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from api.accounts.models import User
from api.deps import Principal
from api.errors import ConflictError, ForbiddenError, NotFoundError, UnprocessableError
from api.library.rules import (
    MAX_KEY_CHARS,
    Heatmap,
    HeatmapTooLargeError,
    SegmentInput,
    compute_heatmap,
    name_key,
    normalize_name,
)
from api.pagination import decode_cursor, encode_cursor, split_page
from api.practice.models import PracticeSegment, PracticeSession, Tag
from api.teaching.access import ensure_can_view_student

__all__ = [
    "GLOBAL_SCOPE",
    "SEED_TAGS",
    "Kind",
    "attachable_tags",
    "create_tag",
    "delete_tag",
    "get_tag",
    "list_tags",
    "piece_heatmap",
    "seed_global_tags",
    "update_tag",
]

Kind = Literal["tag", "piece"]
GLOBAL_SCOPE: Final = "global"
SEED_TAGS: Final = ("Scales", "Etudes", "Sight-reading", "Repertoire", "Technique")
_PIECE_FIELDS: Final = frozenset({"composer", "difficulty", "typical_duration_s"})


def _scope_of(owner_id: uuid.UUID | None) -> str:
    return GLOBAL_SCOPE if owner_id is None else owner_id.hex


def _deleted_key(tag_id: uuid.UUID) -> str:
    return f" deleted {tag_id.hex}"


def _visible_to(user_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(Tag.owner_id.is_(None), Tag.owner_id == user_id)


def _exists_error(kind: Kind, name: str, scope: str, existing: uuid.UUID | None) -> ConflictError:
    where = "a global" if scope == GLOBAL_SCOPE else "one of your"
    extra = {"existing_id": str(existing)} if existing else None
    return ConflictError(f"{where} {kind}s is already named {name!r} (names ignore case)",
                         code="tag_exists", extra=extra)


async def _find_by_key(db: AsyncSession, kind: Kind, scope: str, key: str) -> Tag | None:
    stmt = select(Tag).where(Tag.kind == kind, Tag.scope == scope, Tag.name_key == key)
    return (await db.execute(stmt)).scalar_one_or_none()


async def _visible_tag(db: AsyncSession, user_id: uuid.UUID, tag_id: uuid.UUID,
                       kind: Kind) -> Tag:
    stmt = select(Tag).where(Tag.id == tag_id, Tag.kind == kind, _visible_to(user_id))
    tag = (await db.execute(stmt)).scalar_one_or_none()
    if tag is None:
        raise NotFoundError(f"{kind} {tag_id} does not exist")
    return tag


def _ensure_may_change(viewer: Principal, tag: Tag) -> None:
    if tag.owner_id is None and not viewer.is_admin:
        raise ForbiddenError(f"{tag.kind} {tag.id} is global: only an admin may change it")


def _decode_name_cursor(cursor: str, list_kind: str) -> tuple[str, uuid.UUID]:
    key, id_hex = decode_cursor(cursor, kind=list_kind, arity=2)
    try:
        if not isinstance(key, str) or not isinstance(id_hex, str):
            raise ValueError("wrong types")
        if len(key) > MAX_KEY_CHARS or any(unicodedata.category(c) in ("Cc", "Cs") for c in key):
            raise ValueError("not a name")
        return key, uuid.UUID(hex=id_hex)
    except ValueError:
        raise UnprocessableError(f"cursor {cursor[:40]!r} is not valid here: bad position",
                                 code="invalid_cursor") from None


# --- tags and pieces ----------------------------------------------------------------------


async def list_tags(
    db: AsyncSession,
    viewer: Principal,
    *,
    kind: Kind,
    scope: Literal["all", "global", "personal"] = "all",
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Tag], str | None]:
    """The active tags of ``kind`` the viewer sees, by name (case-insensitive) then id.

    ``q`` matches anywhere in the name, ignoring case (a prefix is a substring too).
    """
    stmt = select(Tag).where(Tag.kind == kind, Tag.status == "active")
    if scope == "global":
        stmt = stmt.where(Tag.owner_id.is_(None))
    elif scope == "personal":
        stmt = stmt.where(Tag.owner_id == viewer.id)
    else:
        stmt = stmt.where(_visible_to(viewer.id))
    if q:
        needle = name_key(" ".join(unicodedata.normalize("NFC", q).split()))
        if needle:
            stmt = stmt.where(Tag.name_key.contains(needle, autoescape=True))
    list_kind = f"{kind}s"
    if cursor:
        key, after_id = _decode_name_cursor(cursor, list_kind)
        stmt = stmt.where(or_(Tag.name_key > key, and_(Tag.name_key == key, Tag.id > after_id)))
    stmt = stmt.order_by(Tag.name_key, Tag.id).limit(limit + 1)
    async with db.begin():
        rows = (await db.execute(stmt)).scalars().all()
    return split_page(rows, limit, lambda t: encode_cursor(list_kind, [t.name_key, t.id.hex]))


async def create_tag(
    db: AsyncSession,
    viewer: Principal,
    *,
    kind: Kind,
    name: str,
    make_global: bool = False,
    composer: str | None = None,
    difficulty: int | None = None,
    typical_duration_s: float | None = None,
) -> Tag:
    """Create a personal tag (or, for an admin, a global one). ``name`` must be normalised."""
    if make_global and not viewer.is_admin:
        raise ForbiddenError(f"only an admin may create a global {kind}; you are a {viewer.role}")
    owner_id = None if make_global else viewer.id
    scope = _scope_of(owner_id)
    key = name_key(name)
    tag = Tag(owner_id=owner_id, scope=scope, kind=kind,
              name=name, name_key=key, status="active")
    if kind == "piece":
        tag.composer, tag.difficulty = composer, difficulty
        tag.typical_duration_s = typical_duration_s
    try:
        async with db.begin():
            existing = await _find_by_key(db, kind, scope, key)
            if existing is not None:
                raise _exists_error(kind, name, scope, existing.id)
            db.add(tag)
    except IntegrityError:  # a concurrent create of the same name won the race
        raise _exists_error(kind, name, scope, None) from None
    return tag


async def get_tag(db: AsyncSession, viewer: Principal, tag_id: uuid.UUID, *, kind: Kind) -> Tag:
    """A tag the viewer sees (deleted ones included, shown with their status)."""
    async with db.begin():
        return await _visible_tag(db, viewer.id, tag_id, kind)


async def update_tag(
    db: AsyncSession,
    viewer: Principal,
    tag_id: uuid.UUID,
    *,
    kind: Kind,
    changes: dict[str, Any],
) -> Tag:
    """Apply ``changes`` (``name`` normalised; for pieces also composer, difficulty,
    typical_duration_s) to a tag the viewer may change."""
    allowed = {"name"} | (_PIECE_FIELDS if kind == "piece" else set())
    unknown = set(changes) - allowed
    if unknown:
        raise UnprocessableError(f"a {kind} has no field {sorted(unknown)[0]!r} to change")
    scope = GLOBAL_SCOPE
    try:
        async with db.begin():
            tag = await _visible_tag(db, viewer.id, tag_id, kind)
            scope = tag.scope
            _ensure_may_change(viewer, tag)
            if tag.status != "active":
                raise NotFoundError(f"{kind} {tag_id} was deleted; it cannot be changed")
            if "name" in changes:
                name = str(changes["name"])
                key = name_key(name)
                other = await _find_by_key(db, kind, tag.scope, key)
                if other is not None and other.id != tag.id:
                    raise _exists_error(kind, name, tag.scope, other.id)
                tag.name, tag.name_key = name, key
            for field in _PIECE_FIELDS & set(changes):
                setattr(tag, field, changes[field])
    except IntegrityError:
        raise _exists_error(kind, str(changes.get("name")), scope, None) from None
    return tag


async def delete_tag(db: AsyncSession, viewer: Principal, tag_id: uuid.UUID, *,
                     kind: Kind) -> None:
    """Soft-delete a tag the viewer may change (deleting a deleted tag again is a no-op)."""
    async with db.begin():
        tag = await _visible_tag(db, viewer.id, tag_id, kind)
        _ensure_may_change(viewer, tag)
        if tag.status == "active":
            tag.status = "deleted"
            tag.name_key = _deleted_key(tag.id)


async def attachable_tags(
    db: AsyncSession, student_id: uuid.UUID, tag_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Tag]:
    """The tags a session of ``student_id`` may be given: active, and global or theirs.

    For the practice domain (runs inside the caller's transaction). Raises 422
    ``unknown_tag`` naming the first id that is not attachable.
    """
    wanted = list(dict.fromkeys(tag_ids))
    if not wanted:
        return {}
    stmt = select(Tag).where(Tag.id.in_(wanted), Tag.status == "active", _visible_to(student_id))
    found = {tag.id: tag for tag in (await db.execute(stmt)).scalars()}
    for tag_id in wanted:
        if tag_id not in found:
            raise UnprocessableError(
                f"tag {tag_id} does not exist, was deleted, or is not yours to use",
                code="unknown_tag")
    return found


# --- the heatmap ---------------------------------------------------------------------------


async def piece_heatmap(
    db: AsyncSession,
    viewer: Principal,
    piece_id: uuid.UUID,
    *,
    student_id: uuid.UUID | None = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
) -> tuple[Tag, uuid.UUID, Heatmap]:
    """The practice heatmap of a piece over a student's active sessions.

    Sessions count when ``started_from <= started_at < started_to`` (either bound optional).
    The viewer must be the student, a teacher who may view them, or an admin (403); the piece
    must be global or the student's own (404); a segment beyond bar 2000 gives 422
    ``too_many_bars``.
    """
    student = student_id or viewer.id
    async with db.begin():
        if student != viewer.id:
            await ensure_can_view_student(db, viewer, student)
            known = await db.execute(select(User.id).where(User.id == student))
            if known.scalar_one_or_none() is None:
                raise NotFoundError(f"student {student} does not exist")
        stmt = select(Tag).where(Tag.id == piece_id, Tag.kind == "piece", _visible_to(student))
        piece = (await db.execute(stmt)).scalar_one_or_none()
        if piece is None:
            raise NotFoundError(f"piece {piece_id} does not exist for student {student}")
        seg = (
            select(PracticeSegment.start_bar, PracticeSegment.end_bar,
                   PracticeSegment.click_count, PracticeSegment.duration_s,
                   PracticeSegment.session_id)
            .join(PracticeSession, PracticeSession.id == PracticeSegment.session_id)
            .where(PracticeSegment.piece_id == piece_id,
                   PracticeSession.student_id == student,
                   PracticeSession.status == "active")
        )
        if started_from is not None:
            seg = seg.where(PracticeSession.started_at >= started_from)
        if started_to is not None:
            seg = seg.where(PracticeSession.started_at < started_to)
        rows: Sequence[Any] = (await db.execute(seg)).all()
    try:
        heatmap = compute_heatmap(SegmentInput(*row) for row in rows)
    except HeatmapTooLargeError as exc:
        raise UnprocessableError(f"piece {piece_id}: {exc}", code="too_many_bars") from None
    return piece, student, heatmap


# --- seed data -----------------------------------------------------------------------------


async def seed_global_tags(db: AsyncSession, names: Sequence[str] = SEED_TAGS) -> list[str]:
    """Create the global tags of ``names`` that never existed; return the names created.

    Idempotent: a second run creates nothing, and a global tag an admin deleted is not
    brought back. Commits its own transaction.
    """
    wanted = [normalize_name(name) for name in names]
    created: list[str] = []
    async with db.begin():
        rows = (await db.execute(
            select(Tag.name).where(Tag.scope == GLOBAL_SCOPE, Tag.kind == "tag")
        )).scalars().all()
        present = {name_key(normalize_name(name)) for name in rows}
        for name in wanted:
            key = name_key(name)
            if key in present:
                continue
            try:
                async with db.begin_nested():
                    db.add(Tag(owner_id=None, scope=GLOBAL_SCOPE, kind="tag", name=name,
                               name_key=key, status="active"))
            except IntegrityError:  # another seeder made it meanwhile
                continue
            present.add(key)
            created.append(name)
    return created
