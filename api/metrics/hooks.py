"""What the practice domain calls when it writes sessions (by hand or through sync), in the
same transaction: the session's ``manual`` metrics are replaced by its current numbers, and
stream summaries that arrived before the session (``pending``) are applied now; after the
commit, the facts of sessions just added join the student's cached facts and the student's
totals on the Redis leaderboard are recomputed."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.gamification.leaderboard import refresh_user_week, refresh_user_week_from
from api.gamification.rules import week_start
from api.metrics.service import (
    apply_pending_for_session,
    manual_values,
    pending_session_ids_among,
    record_fresh_manual_metrics,
    record_manual_metrics,
)
from api.practice.models import PracticeSession
from api.progress.factcache import FACTS_CACHE_KEY, FactsVersion
from api.progress.facts import fresh_facts
from api.state import AppState

__all__ = ["refresh_leaderboard", "session_started_at", "sessions_added", "sessions_written"]


async def sessions_written(db: AsyncSession, rows: Iterable[PracticeSession], *,
                           fresh: Collection[uuid.UUID] = (),
                           new_ids: Collection[uuid.UUID] = ()) -> bool:
    """Keep the metrics of ``rows`` current (inside the caller's transaction). ``fresh``
    holds the ids of rows inserted by this transaction: they have no metrics to replace;
    ``new_ids`` those whose id the server made in it: no stream summary can name them yet.
    One query finds which of the other active rows have pending summaries; returns whether
    any was applied (which changes the student's ``facts_seq``)."""
    rows = list(rows)
    await record_fresh_manual_metrics(db, [row for row in rows if row.id in fresh])
    for row in rows:
        if row.id not in fresh:
            await record_manual_metrics(db, row)
    active = [row.id for row in rows if row.status == "active" and row.id not in new_ids]
    applied = False
    if active:
        for session_id in await pending_session_ids_among(db, active):
            applied = await apply_pending_for_session(db, session_id) > 0 or applied
    return applied


def sessions_added(db: AsyncSession, student_id: uuid.UUID, *, before: FactsVersion,
                   after: FactsVersion,
                   sessions: Sequence[tuple[PracticeSession, Collection[uuid.UUID]]],
                   ) -> FactsVersion | None:
    """After the commit of a write that took the student's facts from version ``before``
    to ``after`` only by inserting ``sessions`` (each with its pieces) and their manual
    metrics: add their facts to the cached facts of ``before`` (if cached: see
    :meth:`api.progress.factcache.FactsCache.extend`), so the leaderboard refresh and the
    student's next reads need not load their history again. Returns ``after`` when the
    cache now holds the student at it (for :func:`refresh_leaderboard`), else None."""
    cache = db.info.get(FACTS_CACHE_KEY)
    if cache is None:
        return None
    active = [(row, pieces) for row, pieces in sessions if row.status == "active"]
    extended = cache.extend(student_id, base=before, version=after, added=lambda pieces_too: [
        fresh_facts(row, manual_values(row), pieces if pieces_too else ())
        for row, pieces in active
    ])
    return after if extended else None


async def refresh_leaderboard(
    state: AppState, user_id: uuid.UUID, instants: Iterable[datetime] = (), *,
    version: FactsVersion | None = None,
) -> None:
    """After a commit that changed a student's practice data: recompute their totals on the
    Redis weekly boards (a no-op without Redis) for the weeks of ``instants`` (a session's new
    and, for an edit or delete, old start): only those weeks changed. A sync batch that
    moves a session out of an older week leaves a stale total there until the board's hourly
    rebuild from the database (api/gamification/leaderboard.py).

    ``version`` is the data version the write committed, when :func:`sessions_added` put
    the student's facts at it in the cache: the totals then come from those facts, with no
    database read (one Redis round trip a week)."""
    if state.redis is None:
        return
    weeks = {week_start(t) for t in instants}
    if version is not None:
        facts = state.facts_cache.get(user_id, pieces=False, version=version)
        if facts is not None:
            for week in sorted(weeks):
                await refresh_user_week_from(state, user_id, week, facts, version)
            return
    async with state.read_sessions() as db:  # reads only: autocommit, no BEGIN/COMMIT
        for week in sorted(weeks):
            await refresh_user_week(state, db, user_id, week)


async def session_started_at(state: AppState, session_id: uuid.UUID) -> datetime | None:
    """When a session started (in a short session of its own), to refresh the week it leaves
    when an edit moves or deletes it; None without Redis (nothing to refresh) or no row."""
    if state.redis is None:
        return None
    async with state.sessions() as db:
        started: datetime | None = await db.scalar(
            select(PracticeSession.started_at).where(PracticeSession.id == session_id)
        )
    return started
