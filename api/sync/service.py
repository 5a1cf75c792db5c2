"""Offline sync: apply a batch of a device's sessions once, and pull what changed since.

A batch runs in ONE transaction that begins by locking the user's row
(:func:`~api.practice.changes.next_change_version`), so batches of one user queue behind each
other; inside the lock it looks up the ``Idempotency-Key``: a key already used answers with
the stored response (same body) or 422 ``idempotency_key_reused`` (another body), and
changes nothing. Otherwise every item is decided (:func:`api.practice.rules.decide_sync`),
the writes are made in bulk, and the response is stored with the key in the same
transaction — a batch cut off half-way leaves neither effects nor a record. Two requests
with one key racing past the lock (impossible with it, but the unique ``(user_id, key)`` is
the last word) end with the loser's IntegrityError, answered by the winner's response.

The batch runs in a task of its own with its own database session, shielded from the
request's cancellation (a client that disconnects): once begun it commits or rolls back
cleanly — never leaving a connection mid-transaction holding the user's lock — and the
client's retry with the same key gets its answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.db import new_id, table_of, utcnow
from api.deps import Principal
from api.errors import BadRequestError, ConflictError, UnavailableError, UnprocessableError
from api.fastsql import Query, Rows
from api.metrics.hooks import sessions_added, sessions_written
from api.practice.changes import advance_change_seq, next_change_version
from api.practice.models import PracticeSession
from api.practice.rules import ServerVersion, SessionContent, decide_sync
from api.practice.schemas import SegmentRequest
from api.practice.service import (
    SCALAR_FIELDS,
    check_references,
    content_of_fields,
    pieces_of,
    replace_children,
    session_contents,
    session_views,
)
from api.progress.factcache import FactsVersion
from api.sync.models import IdempotencyRecord
from api.sync.schemas import (
    SyncBatchRequest,
    SyncBatchResponse,
    SyncChangesResponse,
    SyncResult,
    SyncStatus,
    Tombstone,
)

__all__ = [
    "MAX_CLOCK_AHEAD",
    "BatchOutcome",
    "apply_batch",
    "check_idempotency_key",
    "parse_since",
    "pull_changes",
    "request_hash",
]

MAX_CLOCK_AHEAD = timedelta(days=1)
# batches whose requests were cancelled run on; asyncio keeps only weak references to tasks
_RUNNING: set[asyncio.Task[Any]] = set()
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
_MAX_SEQ = 2**63 - 1


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What to answer: the status, the JSON body, and whether it is a replay; and the
    data version this batch committed when the facts cache now holds the student at it
    (see :func:`api.metrics.hooks.refresh_leaderboard`)."""

    status_code: int
    body: dict[str, Any]
    replayed: bool
    cached: FactsVersion | None = None


@dataclass(frozen=True, slots=True)
class _Stored:
    """A stored answer, copied out of its row (a rollback expires ORM objects)."""

    key: str
    request_hash: str
    status_code: int
    response: dict[str, Any]


class _ReplayError(Exception):
    def __init__(self, stored: _Stored) -> None:
        self.stored = stored


def check_idempotency_key(key: str | None) -> str:
    """The key, or 400 (``idempotency_key_required`` / ``idempotency_key_invalid``)."""
    if key is None or key == "":
        raise BadRequestError(
            "the header Idempotency-Key is required: send a unique value per batch "
            "(e.g. a UUID) and the same value when retrying it",
            code="idempotency_key_required",
        )
    if not _KEY.fullmatch(key):
        shown = key[:40] + ("..." if len(key) > 40 else "")
        raise BadRequestError(
            f"Idempotency-Key {shown!r} must be 1..255 printable ASCII characters",
            code="idempotency_key_invalid",
        )
    return key


def request_hash(body: SyncBatchRequest) -> str:
    """SHA-256 of the canonical JSON of the (validated) body."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(stored: _Stored, digest: str) -> BatchOutcome:
    if stored.request_hash != digest:
        raise UnprocessableError(
            f"Idempotency-Key {stored.key!r} was already used for a different batch; "
            "use a new key for new changes",
            code="idempotency_key_reused",
        )
    return BatchOutcome(stored.status_code, stored.response, replayed=True)


_INSERT_RECORD = Rows(insert(table_of(IdempotencyRecord)))  # rows of every column

# every batch looks its key up: a prebuilt read of whether it was used (api.fastsql)
_KEY_USED = Query(lambda member: (
    select(IdempotencyRecord.id).where(IdempotencyRecord.user_id == bindparam("user_id"),
                                       IdempotencyRecord.key == bindparam("key"))
))


async def _stored(db: AsyncSession, user_id: uuid.UUID, key: str) -> _Stored | None:
    if not await _KEY_USED.rows(db, user_id=user_id, key=key):
        return None
    row = (
        await db.execute(
            select(IdempotencyRecord.key, IdempotencyRecord.request_hash,
                   IdempotencyRecord.status_code, IdempotencyRecord.response).where(
                IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
            )
        )
    ).one_or_none()
    if row is None:
        return None
    key, request_hash, status_code, response = row
    return _Stored(key, request_hash, status_code, response)


async def apply_batch(
    sessions: async_sessionmaker[AsyncSession], user: Principal, key: str,
    body: SyncBatchRequest,
) -> BatchOutcome:
    """Apply ``body`` once under ``key`` in a task shielded from cancellation (see the
    module docstring)."""
    task = asyncio.create_task(_apply_batch(sessions, user, key, body),
                               name=f"sync-batch-{user.id}")
    _RUNNING.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


def _finished(task: asyncio.Task[Any]) -> None:
    _RUNNING.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a cancelled request's batch may fail unobserved


async def _apply_batch(
    sessions: async_sessionmaker[AsyncSession], user: Principal, key: str,
    body: SyncBatchRequest,
) -> BatchOutcome:
    try:
        async with sessions() as db:
            return await _apply_batch_in(db, user, key, body)
    except PoolTimeoutError as exc:
        raise UnavailableError("no database connection is free; retry shortly") from exc


async def _apply_batch_in(
    db: AsyncSession, user: Principal, key: str, body: SyncBatchRequest
) -> BatchOutcome:
    digest = request_hash(body)
    try:
        async with db.begin():
            base_seq, facts_seq = await next_change_version(db, user.id)
            existing = await _stored(db, user.id, key)
            if existing is not None:
                raise _ReplayError(existing)
            response, added = await _apply(db, user, body, base_seq)
            payload = response.model_dump(mode="json")
            await _INSERT_RECORD.insert(db, [{
                "id": new_id(), "user_id": user.id, "key": key, "request_hash": digest,
                "status_code": 200, "response": payload, "created_at": utcnow(),
            }])
    except _ReplayError as replay:
        return _replay(replay.stored, digest)
    except IntegrityError:
        winner = await _stored(db, user.id, key)
        await db.rollback()
        if winner is None:
            raise ConflictError(
                f"the batch under Idempotency-Key {key!r} collided with a concurrent "
                "change; retry it with the same key",
                code="idempotency_in_progress",
            ) from None
        return _replay(winner, digest)
    cached = None if added is None else sessions_added(
        db, user.id, before=(base_seq - 1, facts_seq),
        after=(int(response.cursor), facts_seq), sessions=added,
    )
    return BatchOutcome(200, payload, replayed=False, cached=cached)


_ANY_EXISTS = Query(lambda member: (
    select(PracticeSession.id).where(member(PracticeSession.id, "ids")).limit(1)
))


async def _apply(
    db: AsyncSession, user: Principal, body: SyncBatchRequest, base_seq: int
) -> tuple[SyncBatchResponse, list[tuple[PracticeSession, set[uuid.UUID]]] | None]:
    """The batch's response, and when it only inserted sessions (no update, no stream
    summary applied) those sessions with their pieces, for the facts cache
    (:func:`api.metrics.hooks.sessions_added`)."""
    now = utcnow()
    for index, item in enumerate(body.sessions):
        if item.updated_at > now + MAX_CLOCK_AHEAD:
            raise UnprocessableError(
                f"sessions.{index}.updated_at {item.updated_at.isoformat()} is more than a "
                "day ahead of the server's clock; fix the device's clock"
            )
    ids = list(dict.fromkeys(item.id for item in body.sessions))
    rows: dict[uuid.UUID, PracticeSession] = {}
    if ids and await _ANY_EXISTS.rows(db, ids=ids):  # a batch of new sessions loads nothing
        rows = {
            row.id: row
            for row in (
                await db.execute(select(PracticeSession).where(PracticeSession.id.in_(ids)))
            ).scalars()
        }
    own = [row for row in rows.values() if row.student_id == user.id]
    contents: dict[uuid.UUID, SessionContent] = await session_contents(db, own)

    def attached(session_id: uuid.UUID) -> set[uuid.UUID]:
        content = contents.get(session_id)
        if content is None:
            return set()
        return set(content.tag_ids) | {s.piece_id for s in content.segments if s.piece_id}

    found_tags = await check_references(db, user.id, [
        (f"sessions.{index}.", item.tag_ids, [s.piece_id for s in item.segments],
         attached(item.id))
        for index, item in enumerate(body.sessions)
    ])

    seq = base_seq
    results: list[SyncResult] = []
    conflicts: list[int] = []
    tags: dict[uuid.UUID, list[uuid.UUID]] = {}
    segments: dict[uuid.UUID, list[SegmentRequest]] = {}
    fresh: set[uuid.UUID] = set()
    for item in body.sessions:
        row = rows.get(item.id)
        if row is not None and row.student_id != user.id:
            results.append(SyncResult(id=item.id, status="rejected",
                                      reason="this id belongs to another account"))
            continue
        content = content_of_fields(item)
        server = None
        if row is not None:
            server = ServerVersion(content=contents[row.id], deleted=row.status == "deleted",
                                   client_updated_at=row.client_updated_at)
        decision = decide_sync(content=content, deleted=item.deleted,
                               updated_at=item.updated_at, server=server)
        if decision == "unchanged":
            results.append(SyncResult(id=item.id, status="unchanged"))
            continue
        if decision == "conflict":
            conflicts.append(len(results))
            results.append(SyncResult(
                id=item.id, status="conflict",
                reason=(f"the server's version (edited {_iso(row)}) is newer than or as "
                        f"new as this one ({item.updated_at.isoformat()}); it was kept"),
            ))
            continue
        if row is None:
            row = PracticeSession(id=item.id, student_id=user.id, created_at=now)
            db.add(row)
            rows[item.id] = row
            fresh.add(item.id)
        status: SyncStatus
        if item.deleted and decision == "apply":
            row.status = "deleted"
            row.deleted_at = now
            status = "deleted"
        else:
            values = item.model_dump(include=set(SCALAR_FIELDS))
            for name in SCALAR_FIELDS:
                setattr(row, name, values[name])
            row.status = "deleted" if item.deleted else "active"
            row.deleted_at = now if item.deleted else None
            tags[item.id] = item.tag_ids
            segments[item.id] = item.segments
            contents[item.id] = content
            status = ("deleted" if item.deleted else
                      "created" if decision == "create" else "updated")
        row.client_updated_at = item.updated_at
        row.updated_at = now
        row.change_seq = seq
        seq += 1
        results.append(SyncResult(id=item.id, status=status))
    await db.flush()
    await replace_children(db, tags=tags, segments=segments, fresh=fresh)
    written = {r.id for r in results if r.status in ("created", "updated", "deleted")}
    pending = await sessions_written(db, [rows[i] for i in written], fresh=fresh)
    last_seq = max(base_seq, seq - 1)
    if last_seq > base_seq:  # else the counter is there already
        await advance_change_seq(db, user.id, last_seq)
    if conflicts:
        conflict_rows = [rows[results[i].id] for i in conflicts]
        views = {view.id: view for view in await session_views(db, conflict_rows)}
        for i in conflicts:
            results[i].server = views[results[i].id]
    added = None
    if written <= fresh and not pending:
        added = [(rows[i], pieces_of(found_tags, tags.get(i, []), segments.get(i, [])))
                 for i in written]
    return SyncBatchResponse(results=results, cursor=str(last_seq)), added


def _iso(row: PracticeSession | None) -> str:
    at = row.client_updated_at if row is not None else None
    return at.isoformat() if at is not None else "unknown"


def parse_since(since: str | None) -> int:
    """The change number of a ``since`` cursor (absent: 0), or 422 ``invalid_cursor``."""
    if since is None or since == "":
        return 0
    if not since.isdigit() or len(since) > 19 or int(since) > _MAX_SEQ:
        raise UnprocessableError(
            f"since {since[:40]!r} is not a cursor returned by this API (a change number)",
            code="invalid_cursor",
        )
    return int(since)


async def pull_changes(
    db: AsyncSession, user: Principal, *, since: str | None, limit: int
) -> SyncChangesResponse:
    """The caller's sessions written after ``since``, oldest change first."""
    after = parse_since(since)
    rows = (
        await db.execute(
            select(PracticeSession)
            .where(PracticeSession.student_id == user.id, PracticeSession.change_seq > after)
            .order_by(PracticeSession.change_seq, PracticeSession.id)
            .limit(limit + 1)
        )
    ).scalars().all()
    page = list(rows[:limit])
    live = [row for row in page if row.status != "deleted"]
    return SyncChangesResponse(
        sessions=await session_views(db, live),
        tombstones=[Tombstone(id=row.id, deleted_at=row.deleted_at)
                    for row in page if row.status == "deleted"],
        cursor=str(page[-1].change_seq if page else after),
        has_more=len(rows) > limit,
    )
