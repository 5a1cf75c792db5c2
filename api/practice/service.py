"""Practice sessions: create, read, list, update, soft-delete; shared by offline sync.

Every write locks the owner's row first (:func:`~api.practice.changes.next_change_seq`, the
first statement of the transaction: writers of one user queue there, and on SQLite the write
lock is taken before any read) and stores the new counter on the session. Tags and segments
are loaded for a whole page at once (:func:`session_views`: three queries, whatever the page
size); there are no ORM relationships, so nothing can lazy-load. A session just created
answers with what was inserted (:func:`fresh_session_view`) instead of reading it back, and
its facts join the student's cached facts after the commit
(:func:`api.metrics.hooks.sessions_added`), so the leaderboard refresh that follows does not
load the student's history again.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, itemgetter
from types import SimpleNamespace
from typing import Any, Protocol, cast

from pydantic import TypeAdapter
from sqlalchemy import (
    Label,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import new_id, table_of, utcnow
from api.deps import Principal
from api.errors import ConflictError, ForbiddenError, NotFoundError, UnprocessableError
from api.fastsql import Member, Query, Rows, flushed_connection
from api.metrics.hooks import sessions_added, sessions_written
from api.pagination import (
    decode_time_id_cursor,
    encode_time_id_cursor,
    keyset_before,
    split_page,
)
from api.practice.changes import next_change_seq, next_change_version
from api.practice.models import PracticeSegment, PracticeSession, SessionTag, Tag
from api.practice.rules import (
    EARLIEST,
    LATEST,
    SegmentContent,
    SessionContent,
    duration_s,
    time_window_problem,
)
from api.practice.schemas import (
    SegmentRequest,
    SegmentResponse,
    SessionCreateRequest,
    SessionFields,
    SessionListResponse,
    SessionResponse,
    SessionUpdateRequest,
    TagKind,
    TagRef,
)
from api.progress.factcache import FactsVersion
from api.teaching.access import ensure_can_view_student
from api.teaching.models import SessionFeedback

__all__ = [
    "CURSOR_KIND",
    "SCALAR_FIELDS",
    "ListFilters",
    "check_references",
    "content_of_fields",
    "create_session",
    "delete_session",
    "fresh_session_view",
    "get_session",
    "list_sessions",
    "pieces_of",
    "replace_children",
    "session_contents",
    "session_views",
    "update_session",
]

CURSOR_KIND = "sessions"
_IN_CHUNK = 5000
SCALAR_FIELDS = ("focus", "started_at", "ended_at", "self_rating", "note", "target_bpm",
                 "accuracy_pct", "mode")


@dataclass(frozen=True, slots=True)
class ListFilters:
    """Filters of ``GET /sessions`` (all optional; ``started_to`` is exclusive)."""

    started_from: datetime | None = None
    started_to: datetime | None = None
    tag_id: uuid.UUID | None = None
    piece_id: uuid.UUID | None = None
    mode: str | None = None


# --- reading -----------------------------------------------------------------------------

# The views' queries (a list page runs them on every request), run as plain SQL on
# PostgreSQL (api.fastsql) with the session ids bound per call.
_TAGS_OF = Query(lambda member: (
    select(SessionTag.session_id, Tag.id, Tag.name, Tag.kind)
    .join(Tag, Tag.id == SessionTag.tag_id)
    .where(member(SessionTag.session_id, "ids"))
    .order_by(SessionTag.session_id, Tag.kind, Tag.name_key, Tag.id)
))
_SEGMENTS_OF = Query(lambda member: (
    select(PracticeSegment.session_id, PracticeSegment.id, PracticeSegment.piece_id,
           PracticeSegment.label, PracticeSegment.start_bar, PracticeSegment.end_bar,
           PracticeSegment.click_count, PracticeSegment.duration_s, PracticeSegment.tempo_bpm,
           PracticeSegment.accuracy_pct)
    .where(member(PracticeSegment.session_id, "ids"))
    .order_by(PracticeSegment.session_id, PracticeSegment.id)
))
_FEEDBACK_COUNTS = Query(lambda member: (
    select(SessionFeedback.session_id, func.count().label("n"))
    .where(member(SessionFeedback.session_id, "ids"), SessionFeedback.status == "active")
    .group_by(SessionFeedback.session_id)
))


def _children_sql(session_id: str) -> tuple[str, str, str]:
    """On PostgreSQL, the three above as expressions of the session whose id is the SQL
    ``session_id``: its tags and its segments as arrays of rows (asyncpg reads them as
    tuples; the orders are those above) and its active feedback count."""
    return (
        f"ARRAY(SELECT ROW(t.id, t.name, t.kind) FROM {SessionTag.__tablename__} AS st"
        f" JOIN {Tag.__tablename__} AS t ON t.id = st.tag_id"
        f" WHERE st.session_id = {session_id} ORDER BY t.kind, t.name_key, t.id)",
        "ARRAY(SELECT ROW(g.id, g.piece_id, g.label, g.start_bar, g.end_bar, g.click_count,"
        f" g.duration_s, g.tempo_bpm, g.accuracy_pct) FROM {PracticeSegment.__tablename__}"
        f" AS g WHERE g.session_id = {session_id} ORDER BY g.id)",
        f"(SELECT count(*) FROM {SessionFeedback.__tablename__} AS f"
        f" WHERE f.session_id = {session_id} AND f.status = 'active')",
    )


# A view's children in one statement (two round trips less, each ~0.1-0.2 ms of CPU here),
# and the common reads with them as three more columns (one less again).
_CHILDREN_PG = f"SELECT v.id, {', '.join(_children_sql('v.id'))} FROM unnest($1::uuid[]) AS v(id)"
_CHILD_COLUMNS_PG: tuple[Label[Any], ...] = tuple(
    literal_column(sql).label(name) for name, sql in zip(
        ("tag_rows", "segment_rows", "feedback_count"),
        _children_sql(f"{PracticeSession.__tablename__}.id"), strict=True)
)


class SessionViewRow(Protocol):
    """The columns of a practice session a view shows (an ORM object or a Core row)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def student_id(self) -> uuid.UUID: ...
    @property
    def focus(self) -> str | None: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def self_rating(self) -> int | None: ...
    @property
    def note(self) -> str | None: ...
    @property
    def target_bpm(self) -> float | None: ...
    @property
    def accuracy_pct(self) -> float | None: ...
    @property
    def mode(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def client_updated_at(self) -> datetime | None: ...
    @property
    def deleted_at(self) -> datetime | None: ...
    @property
    def change_seq(self) -> int: ...


#: Every column of a session, as Core rows: a page of them is read on every list request,
#: and rows cost a fraction of ORM objects.
_SESSION_COLUMNS = tuple(PracticeSession.__table__.columns)
_INSERT_SESSIONS = Rows(insert(table_of(PracticeSession)))  # rows of every column
_INSERT_TAGS = Rows(insert(table_of(SessionTag)))
_INSERT_SEGMENTS = Rows(insert(table_of(PracticeSegment)))
_SESSION_FIELDS = tuple(column.name for column in _SESSION_COLUMNS)
# What a view shows of a session row, read in one call: by position from a row of
# _SESSION_COLUMNS (a Core row's attribute access costs several times its indexing, and a
# page reads sixteen of them per session), by name from anything else (an ORM object).
_VIEW_FIELDS = ("id", "student_id", "focus", "started_at", "ended_at", "self_rating", "note",
                "target_bpm", "accuracy_pct", "mode", "status", "created_at", "updated_at",
                "client_updated_at", "deleted_at", "change_seq")
_VIEW_BY_POSITION = itemgetter(*(_SESSION_FIELDS.index(name) for name in _VIEW_FIELDS))
_VIEW_BY_NAME = attrgetter(*_VIEW_FIELDS)


async def session_views(
    db: AsyncSession, rows: Sequence[SessionViewRow]
) -> list[SessionResponse]:
    """Responses for ``rows`` with their tags, segments and feedback counts (3 queries; one
    on PostgreSQL)."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    conn = await flushed_connection(db)
    if conn.dialect.name == "postgresql":
        return _views(rows, *_children(await conn.exec_driver_sql(_CHILDREN_PG, (ids,))))
    tags = await _tag_refs(db, ids)
    segments: dict[uuid.UUID, list[SegmentResponse]] = defaultdict(list)
    for (session_id, seg_id, piece_id, label, start_bar, end_bar, click_count, seg_duration_s,
         tempo_bpm, accuracy_pct) in await _SEGMENTS_OF.rows(db, ids=ids):
        segments[session_id].append(SegmentResponse(
            id=seg_id, piece_id=piece_id, label=label, start_bar=start_bar, end_bar=end_bar,
            click_count=click_count, duration_s=seg_duration_s, tempo_bpm=tempo_bpm,
            accuracy_pct=accuracy_pct,
        ))
    feedback = {session_id: int(count)
                for session_id, count in await _FEEDBACK_COUNTS.rows(db, ids=ids)}
    return _views(rows, tags, segments, feedback)


async def _tag_refs(db: AsyncSession, ids: Sequence[uuid.UUID]
                    ) -> dict[uuid.UUID, list[TagRef]]:
    tags: dict[uuid.UUID, list[TagRef]] = defaultdict(list)
    for session_id, tag_id, name, kind in await _TAGS_OF.rows(db, ids=ids):
        tags[session_id].append(TagRef(id=tag_id, name=name, kind=cast(TagKind, kind)))
    return tags


def _segment_view(seg: Any) -> SegmentResponse:
    return SegmentResponse(
        id=seg.id, piece_id=seg.piece_id, label=seg.label, start_bar=seg.start_bar,
        end_bar=seg.end_bar, click_count=seg.click_count, duration_s=seg.duration_s,
        tempo_bpm=seg.tempo_bpm, accuracy_pct=seg.accuracy_pct,
    )


async def fresh_session_view(
    db: AsyncSession, row: SessionViewRow, *, tags: Mapping[uuid.UUID, Tag],
    segments: Sequence[Mapping[str, Any]],
) -> SessionResponse:
    """What :func:`session_views` gives for a session this transaction just inserted,
    built from what it inserted: ``tags`` its tags (by id, as loaded by
    :func:`check_references`), ``segments`` its segment rows (:func:`replace_children`).
    No one else can have given it feedback yet. Two tags or more are read back, so that the
    database's collation orders them as for every other view."""
    if len(tags) > 1:
        tag_refs = await _tag_refs(db, [row.id])
    else:
        tag_refs = {row.id: [TagRef(id=tag.id, name=tag.name, kind=cast(TagKind, tag.kind))
                             for tag in tags.values()]}
    views = [_segment_view(SimpleNamespace(**seg))
             for seg in sorted(segments, key=lambda seg: cast(uuid.UUID, seg["id"]))]
    return _views([row], tag_refs, {row.id: views}, {})[0]


def _children(
    result: Iterable[Sequence[Any]],
) -> tuple[dict[uuid.UUID, list[TagRef]], dict[uuid.UUID, list[SegmentResponse]],
           dict[uuid.UUID, int]]:
    """The tags, segments and feedback counts by session, from :data:`_CHILDREN_PG`'s rows."""
    tags: dict[uuid.UUID, list[TagRef]] = {}
    segments: dict[uuid.UUID, list[SegmentResponse]] = {}
    feedback: dict[uuid.UUID, int] = {}
    for session_id, tag_rows, segment_rows, count in result:
        if tag_rows:
            tags[session_id] = [TagRef(id=tag_id, name=name, kind=cast(TagKind, kind))
                                for tag_id, name, kind in tag_rows]
        if segment_rows:
            segments[session_id] = [SegmentResponse(
                id=seg_id, piece_id=piece_id, label=label, start_bar=start_bar,
                end_bar=end_bar, click_count=click_count, duration_s=seg_duration_s,
                tempo_bpm=tempo_bpm, accuracy_pct=accuracy_pct,
            ) for (seg_id, piece_id, label, start_bar, end_bar, click_count, seg_duration_s,
                   tempo_bpm, accuracy_pct) in segment_rows]
        if count:
            feedback[session_id] = int(count)
    return tags, segments, feedback


_CHILDREN_AT = len(_SESSION_FIELDS)
_ID_AT = _SESSION_FIELDS.index("id")


def _views_with_children(rows: Sequence[Row[Any]]) -> list[SessionResponse]:
    """The responses of rows of the session's columns followed by :data:`_CHILD_COLUMNS_PG`."""
    at = _CHILDREN_AT
    return _views(rows, *_children((row[_ID_AT], row[at], row[at + 1], row[at + 2])
                                   for row in rows))


def _views(
    rows: Sequence[SessionViewRow], tags: Mapping[uuid.UUID, list[TagRef]],
    segments: Mapping[uuid.UUID, list[SegmentResponse]], feedback: Mapping[uuid.UUID, int],
) -> list[SessionResponse]:
    """The responses of ``rows``, rows of one query (a Core row's ``_fields`` costs a few
    microseconds, so they are compared once; rows may go on after the session's columns)."""
    first = rows[0] if rows else None
    by_position = (isinstance(first, Row | tuple)  # a Core row, or api.fastsql's
                   and first._fields[:len(_SESSION_FIELDS)] == _SESSION_FIELDS)
    views = []
    for row in rows:
        values = dict(zip(_VIEW_FIELDS, _VIEW_BY_POSITION(cast(Row[Any], row)) if by_position
                          else _VIEW_BY_NAME(row), strict=True))
        session_id, row_tags = values["id"], tags.get(values["id"], [])
        values.update(
            duration_s=duration_s(values["started_at"], values["ended_at"]),
            tag_ids=[tag.id for tag in row_tags], tags=row_tags,
            segments=segments.get(session_id, []), feedback_count=feedback.get(session_id, 0),
        )
        views.append(values)
    # validated together: one call into pydantic instead of one model at a time
    return _SESSION_LIST.validate_python(views)


_SESSION_LIST = TypeAdapter(list[SessionResponse])


async def session_contents(
    db: AsyncSession, rows: Sequence[PracticeSession]
) -> dict[uuid.UUID, SessionContent]:
    """The comparable content of ``rows`` (2 queries), for sync's decisions."""
    if not rows:
        return {}
    ids = [row.id for row in rows]
    tag_ids: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for session_id, tag_id in (
        await db.execute(
            select(SessionTag.session_id, SessionTag.tag_id).where(SessionTag.session_id.in_(ids))
        )
    ):
        tag_ids[session_id].add(tag_id)
    segments: dict[uuid.UUID, list[SegmentContent]] = defaultdict(list)
    for seg in await _segments_of(db, ids):
        segments[seg.session_id].append(SegmentContent(
            piece_id=seg.piece_id, label=seg.label, start_bar=seg.start_bar,
            end_bar=seg.end_bar, click_count=seg.click_count, duration_s=seg.duration_s,
            tempo_bpm=seg.tempo_bpm, accuracy_pct=seg.accuracy_pct,
        ))
    return {
        row.id: SessionContent(
            focus=row.focus, started_at=row.started_at, ended_at=row.ended_at,
            self_rating=row.self_rating, note=row.note, target_bpm=row.target_bpm,
            accuracy_pct=row.accuracy_pct, mode=row.mode,
            tag_ids=frozenset(tag_ids[row.id]), segments=tuple(segments[row.id]),
        )
        for row in rows
    }


async def _segments_of(
    db: AsyncSession, session_ids: Sequence[uuid.UUID]
) -> Sequence[PracticeSegment]:
    """The segments of the sessions, grouped by session, each session's in id order."""
    return (
        await db.execute(
            select(PracticeSegment)
            .where(PracticeSegment.session_id.in_(session_ids))
            .order_by(PracticeSegment.session_id, PracticeSegment.id)
        )
    ).scalars().all()


def content_of_fields(fields: SessionFields) -> SessionContent:
    """The comparable content of a request's fields."""
    return SessionContent(
        focus=fields.focus, started_at=fields.started_at, ended_at=fields.ended_at,
        self_rating=fields.self_rating, note=fields.note, target_bpm=fields.target_bpm,
        accuracy_pct=fields.accuracy_pct, mode=fields.mode, tag_ids=frozenset(fields.tag_ids),
        segments=tuple(_segment_content(seg) for seg in fields.segments),
    )


def _segment_content(seg: SegmentRequest) -> SegmentContent:
    return SegmentContent(
        piece_id=seg.piece_id, label=seg.label, start_bar=seg.start_bar, end_bar=seg.end_bar,
        click_count=seg.click_count, duration_s=seg.duration_s, tempo_bpm=seg.tempo_bpm,
        accuracy_pct=seg.accuracy_pct,
    )


_ONE = Query(lambda member: select(*_SESSION_COLUMNS).where(PracticeSession.id == bindparam("id")))
_ONE_VIEW_PG = Query(lambda member: select(*_SESSION_COLUMNS, *_CHILD_COLUMNS_PG)
                     .where(PracticeSession.id == bindparam("id")))


async def get_session(
    db: AsyncSession, viewer: Principal, session_id: uuid.UUID
) -> SessionResponse:
    """One session, for its owner, a teacher who may see the owner, or an admin."""
    on_postgres = db.get_bind().dialect.name == "postgresql"
    # a row, not an ORM object: read-only; on PostgreSQL with the view's children
    found = await (_ONE_VIEW_PG if on_postgres else _ONE).rows(db, id=session_id)
    row = found[0] if found else None
    if row is None or row.status == "deleted":
        raise NotFoundError(f"practice session {session_id} does not exist")
    if row.student_id != viewer.id:
        await ensure_can_view_student(db, viewer, row.student_id)
    if on_postgres:
        return _views_with_children(found)[0]
    return (await session_views(db, [row]))[0]


def _filtered(stmt: Select[Any], filters: ListFilters) -> Select[Any]:
    if filters.started_from is not None:
        stmt = stmt.where(PracticeSession.started_at >= filters.started_from)
    if filters.started_to is not None:
        stmt = stmt.where(PracticeSession.started_at < filters.started_to)
    if filters.mode is not None:
        stmt = stmt.where(PracticeSession.mode == filters.mode)
    if filters.tag_id is not None:
        stmt = stmt.where(exists().where(SessionTag.session_id == PracticeSession.id,
                                         SessionTag.tag_id == filters.tag_id))
    if filters.piece_id is not None:
        stmt = stmt.where(or_(
            exists().where(SessionTag.session_id == PracticeSession.id,
                           SessionTag.tag_id == filters.piece_id),
            exists().where(PracticeSegment.session_id == PracticeSession.id,
                           PracticeSegment.piece_id == filters.piece_id),
        ))
    return stmt


def _page(member: Member, *, after: bool = False) -> Select[Any]:
    """A student's live sessions newest first, ``n`` of them (after the cursor's
    ``(after_at, after_id)`` when ``after``)."""
    at, sid = PracticeSession.started_at, PracticeSession.id
    stmt = select(*_SESSION_COLUMNS).where(
        PracticeSession.student_id == bindparam("owner"), PracticeSession.status == "active"
    )
    if after:
        stmt = stmt.where(or_(at < bindparam("after_at"),
                              and_(at == bindparam("after_at"), sid < bindparam("after_id"))))
    return stmt.order_by(at.desc(), sid.desc()).limit(bindparam("n"))


_PAGE = Query(_page)
_PAGE_AFTER = Query(functools.partial(_page, after=True))
_PAGE_VIEWS_PG = Query(lambda member: _page(member).add_columns(*_CHILD_COLUMNS_PG))
_PAGE_AFTER_VIEWS_PG = Query(
    lambda member: _page(member, after=True).add_columns(*_CHILD_COLUMNS_PG))


async def list_sessions(
    db: AsyncSession,
    viewer: Principal,
    *,
    student_id: uuid.UUID | None,
    filters: ListFilters,
    limit: int,
    cursor: str | None,
) -> SessionListResponse:
    """A page of a student's live sessions, newest first by ``(started_at, id)``."""
    owner = student_id or viewer.id
    for name, value in (("started_from", filters.started_from),
                        ("started_to", filters.started_to)):
        if value is not None and not EARLIEST <= value < LATEST:
            raise UnprocessableError(
                f"{name} {value.isoformat()} is outside {EARLIEST.year}..{LATEST.year}"
            )
    if filters.started_from and filters.started_to and filters.started_to < filters.started_from:
        raise UnprocessableError(
            f"started_to {filters.started_to.isoformat()} is before started_from "
            f"{filters.started_from.isoformat()}"
        )
    after = decode_time_id_cursor(cursor, kind=CURSOR_KIND) if cursor else None
    if owner != viewer.id:
        await ensure_can_view_student(db, viewer, owner)
    rows: Sequence[Any]
    with_children = False
    if filters == ListFilters():
        # the common page: a prebuilt read (api.fastsql), on PostgreSQL with the children
        with_children = db.get_bind().dialect.name == "postgresql"
        keyset = {} if after is None else {"after_at": after[0], "after_id": after[1]}
        page_query = ((_PAGE_AFTER_VIEWS_PG if keyset else _PAGE_VIEWS_PG) if with_children
                      else _PAGE_AFTER if keyset else _PAGE)
        rows = await page_query.rows(db, owner=owner, n=limit + 1, **keyset)
    else:
        stmt = select(*_SESSION_COLUMNS).where(
            PracticeSession.student_id == owner, PracticeSession.status == "active"
        )
        stmt = _filtered(stmt, filters)
        if after is not None:
            stmt = stmt.where(
                keyset_before(PracticeSession.started_at, PracticeSession.id, after)
            )
        stmt = stmt.order_by(PracticeSession.started_at.desc(), PracticeSession.id.desc())
        rows = (await db.execute(stmt.limit(limit + 1))).all()
    page, next_cursor = split_page(
        rows, limit, lambda r: encode_time_id_cursor(CURSOR_KIND, r.started_at, r.id)
    )
    items = _views_with_children(page) if with_children else await session_views(db, page)
    return SessionListResponse(items=items, next_cursor=next_cursor)


# --- writing -----------------------------------------------------------------------------


async def check_references(
    db: AsyncSession,
    owner_id: uuid.UUID,
    wanted: Iterable[tuple[str, Sequence[uuid.UUID], Sequence[uuid.UUID | None], set[uuid.UUID]]],
) -> dict[uuid.UUID, Tag]:
    """Refuse (422, naming the id) tags or pieces the owner may not use.

    ``wanted`` holds, per session being written, ``(where, tag_ids, piece_ids, attached)``:
    a tag or piece is usable when it is global or the owner's and active — or already on
    that session (a tag deleted since keeps its place). Segment pieces must be pieces.
    One query for all of them; returns the tags and pieces named, by id.
    """
    items = list(wanted)
    all_ids = {i for _w, tags, pieces, _a in items for i in (*tags, *pieces) if i is not None}
    found: dict[uuid.UUID, Tag] = {}
    if not all_ids:
        return found
    ordered = sorted(all_ids)
    for start in range(0, len(ordered), _IN_CHUNK):  # stay under the drivers' bind limits
        chunk = ordered[start:start + _IN_CHUNK]
        for row in (await db.execute(select(Tag).where(Tag.id.in_(chunk)))).scalars():
            found[row.id] = row

    def usable(tag_id: uuid.UUID, attached: set[uuid.UUID]) -> Tag | None:
        tag = found.get(tag_id)
        if tag is None or tag.owner_id not in (None, owner_id):
            return None
        if tag.status != "active" and tag_id not in attached:
            return None
        return tag

    for where, tag_ids, piece_ids, attached in items:
        for tag_id in tag_ids:
            if usable(tag_id, attached) is None:
                raise UnprocessableError(
                    f"{where}tag_ids: tag {tag_id} does not exist or is not yours to use",
                    code="unknown_tag",
                )
        for index, piece_id in enumerate(piece_ids):
            if piece_id is None:
                continue
            piece = usable(piece_id, attached)
            if piece is None or piece.kind != "piece":
                raise UnprocessableError(
                    f"{where}segments.{index}.piece_id: piece {piece_id} does not exist or "
                    "is not yours to use",
                    code="unknown_piece",
                )
    return found


async def replace_children(
    db: AsyncSession,
    *,
    tags: Mapping[uuid.UUID, Sequence[uuid.UUID]],
    segments: Mapping[uuid.UUID, Sequence[SegmentRequest]],
    fresh: set[uuid.UUID] | None = None,
) -> list[dict[str, Any]]:
    """Replace the tags (of the sessions in ``tags``) and the segments (of those in
    ``segments``) of several sessions at once: at most 2 deletes and 2 bulk inserts.

    ``fresh`` names sessions just created (nothing to delete for them). Returns the segment
    rows inserted (every column of ``practice_segments``).
    """
    fresh = fresh or set()
    old_tags = [sid for sid in tags if sid not in fresh]
    old_segments = [sid for sid in segments if sid not in fresh]
    if old_tags:
        await db.execute(delete(SessionTag).where(SessionTag.session_id.in_(old_tags)))
    if old_segments:
        await db.execute(
            delete(PracticeSegment).where(PracticeSegment.session_id.in_(old_segments))
        )
    tag_rows = [{"session_id": sid, "tag_id": tid}
                for sid, tag_ids in tags.items() for tid in tag_ids]
    # new_id() is time-ordered, so segments read back (ordered by id) in the order given
    seg_rows: list[dict[str, Any]] = [
        {"id": new_id(), "session_id": sid, **seg.model_dump()}
        for sid, segs in segments.items() for seg in segs
    ]
    await _INSERT_TAGS.insert(db, tag_rows)
    await _INSERT_SEGMENTS.insert(db, seg_rows)
    return seg_rows


def _apply_scalars(row: PracticeSession, values: Mapping[str, Any]) -> None:
    for name in SCALAR_FIELDS:
        if name in values:
            setattr(row, name, values[name])


async def create_session(
    db: AsyncSession, user: Principal, request: SessionCreateRequest
) -> tuple[SessionResponse, FactsVersion | None]:
    """Create a session of the caller (409 if the client's id is taken); returns its view
    and, when the facts cache now holds the student at the version this write committed,
    that version (see :func:`api.metrics.hooks.refresh_leaderboard`)."""
    session_id = request.id
    try:
        async with db.begin():
            seq, facts_seq = await next_change_version(db, user.id)
            if session_id is not None and await db.get(PracticeSession, session_id) is not None:
                raise ConflictError(f"practice session {session_id} already exists")
            tags = await check_references(db, user.id, [
                ("", request.tag_ids, [s.piece_id for s in request.segments], set())
            ])
            now = utcnow()
            row = PracticeSession(
                id=new_id() if session_id is None else session_id,
                student_id=user.id, status="active", client_updated_at=now, change_seq=seq,
                created_at=now, updated_at=now,
            )
            _apply_scalars(row, request.model_dump(include=set(SCALAR_FIELDS)))
            # a Core insert of every column: the row stays out of the unit of work
            await _INSERT_SESSIONS.insert(db, [
                {column.key: getattr(row, column.key) for column in _SESSION_COLUMNS}
            ])
            segments = await replace_children(db, tags={row.id: request.tag_ids},
                                              segments={row.id: request.segments},
                                              fresh={row.id})
            # an id the server just made cannot have stream summaries waiting for it
            pending = await sessions_written(
                db, [row], fresh={row.id}, new_ids={row.id} if session_id is None else set()
            )
            view = await fresh_session_view(  # in the transaction: no second one
                db, row, tags={tag_id: tags[tag_id] for tag_id in request.tag_ids},
                segments=segments,
            )
    except IntegrityError:
        raise ConflictError(
            f"practice session {session_id} already exists, or a tag it names was just "
            "deleted; retry"
        ) from None
    cached = None if pending else sessions_added(
        db, user.id, before=(seq - 1, facts_seq), after=(seq, facts_seq),
        sessions=[(row, pieces_of(tags, request.tag_ids, request.segments))],
    )
    return view, cached


def pieces_of(tags: Mapping[uuid.UUID, Tag], tag_ids: Iterable[uuid.UUID],
              segments: Iterable[SegmentRequest]) -> set[uuid.UUID]:
    """The pieces a session written with ``tag_ids`` and ``segments`` practised (its tags
    of kind piece and its segments' pieces; ``tags`` as :func:`check_references` gives)."""
    pieces = {tag_id for tag_id in tag_ids if tags[tag_id].kind == "piece"}
    pieces.update(seg.piece_id for seg in segments if seg.piece_id is not None)
    return pieces


async def _own_live_session(
    db: AsyncSession, user: Principal, session_id: uuid.UUID
) -> PracticeSession:
    row = await db.get(PracticeSession, session_id, populate_existing=True)
    if row is None or row.status == "deleted":
        raise NotFoundError(f"practice session {session_id} does not exist")
    if row.student_id != user.id:
        raise ForbiddenError(f"only the student who owns practice session {session_id} "
                             "may change it")
    return row


async def update_session(
    db: AsyncSession, user: Principal, session_id: uuid.UUID, request: SessionUpdateRequest
) -> SessionResponse:
    """Change the fields given; ``tag_ids`` and ``segments`` replace the lists."""
    given = request.model_fields_set
    async with db.begin():
        seq = await next_change_seq(db, user.id)
        row = await _own_live_session(db, user, session_id)
        started_at = request.started_at if "started_at" in given else row.started_at
        ended_at = request.ended_at if "ended_at" in given else row.ended_at
        assert started_at is not None
        problem = time_window_problem(started_at, ended_at)
        if problem:
            raise UnprocessableError(problem)
        if request.tag_ids is not None or request.segments is not None:
            current = (await session_contents(db, [row]))[row.id]
            attached = set(current.tag_ids) | {s.piece_id for s in current.segments
                                               if s.piece_id is not None}
            await check_references(db, user.id, [(
                "", request.tag_ids or [], [s.piece_id for s in request.segments or []],
                attached,
            )])
            await replace_children(
                db,
                tags={} if request.tag_ids is None else {row.id: request.tag_ids},
                segments={} if request.segments is None else {row.id: request.segments},
            )
        _apply_scalars(row, request.model_dump(include=set(SCALAR_FIELDS) & given))
        now = utcnow()
        row.client_updated_at = now
        row.updated_at = now
        row.change_seq = seq
        await sessions_written(db, [row])
    return (await session_views(db, [row]))[0]


async def delete_session(db: AsyncSession, user: Principal, session_id: uuid.UUID) -> None:
    """Soft-delete: the row stays as a tombstone that sync delivers."""
    async with db.begin():
        seq = await next_change_seq(db, user.id)
        row = await _own_live_session(db, user, session_id)
        now = utcnow()
        row.status = "deleted"
        row.deleted_at = now
        row.client_updated_at = now
        row.updated_at = now
        row.change_seq = seq
        await sessions_written(db, [row])
