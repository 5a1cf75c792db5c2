"""Pure rules of practice sessions (no database): time windows, durations, and how offline
sync resolves an incoming version against the server's.

Sync is last-writer-wins on the *client's* clock of the last edit (``updated_at`` of the
device, kept as ``client_updated_at``): a newer version is applied (an update, a delete, or a
restore of a deleted session), an older one is refused as a ``conflict`` and the server's
version is sent back, and a version whose content equals the server's is ``unchanged``
whatever its clock says (nothing to resolve).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_SESSION_LENGTH",
    "SegmentContent",
    "ServerVersion",
    "SessionContent",
    "SyncDecision",
    "decide_sync",
    "duration_s",
    "time_window_problem",
]

MAX_SESSION_LENGTH = timedelta(hours=24)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

SyncDecision = Literal["create", "apply", "unchanged", "conflict"]


def time_window_problem(started_at: datetime, ended_at: datetime | None) -> str | None:
    """Why ``started_at``..``ended_at`` is not a valid session window, or None if it is."""
    for name, value in (("started_at", started_at), ("ended_at", ended_at)):
        if value is not None and not EARLIEST <= value < LATEST:
            return (f"{name} {value.isoformat()} is outside {EARLIEST.year}..{LATEST.year}")
    if ended_at is None:
        return None
    if ended_at < started_at:
        return (f"ended_at {ended_at.isoformat()} is before started_at "
                f"{started_at.isoformat()}")
    if ended_at - started_at > MAX_SESSION_LENGTH:
        return (f"ended_at {ended_at.isoformat()} is more than 24 h after started_at "
                f"{started_at.isoformat()}")
    return None


def duration_s(started_at: datetime, ended_at: datetime | None) -> float | None:
    """The session's length in seconds (None while it has no end)."""
    if ended_at is None:
        return None
    return (ended_at - started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class SegmentContent:
    """A segment's fields, comparable by value (ids are the server's business)."""

    piece_id: uuid.UUID | None
    label: str | None
    start_bar: int
    end_bar: int
    click_count: int
    duration_s: float | None
    tempo_bpm: float | None
    accuracy_pct: float | None = None


@dataclass(frozen=True, slots=True)
class SessionContent:
    """What a client edits in a session; equal contents mean nothing to sync.

    ``tag_ids`` compare as a set (their order carries no meaning), segments in order.
    """

    focus: str | None
    started_at: datetime
    ended_at: datetime | None
    self_rating: int | None
    note: str | None
    target_bpm: float | None
    accuracy_pct: float | None
    mode: str
    tag_ids: frozenset[uuid.UUID]
    segments: tuple[SegmentContent, ...]


@dataclass(frozen=True, slots=True)
class ServerVersion:
    """The server's current version of a session, as sync compares it."""

    content: SessionContent
    deleted: bool
    client_updated_at: datetime | None


def decide_sync(
    *,
    content: SessionContent | None,
    deleted: bool,
    updated_at: datetime,
    server: ServerVersion | None,
) -> SyncDecision:
    """What to do with a client's version of a session.

    Parameters
    ----------
    content : SessionContent or None
        The client's fields (None for a tombstone that carries none).
    deleted : bool
        The client deleted the session.
    updated_at : datetime
        The client's clock of its last edit (aware).
    server : ServerVersion or None
        The server's version, None when the id is unknown.

    Returns
    -------
    str
        ``create`` (unknown id: record it, a tombstone too), ``apply`` (newer: overwrite),
        ``unchanged`` (same content, or both deleted) or ``conflict`` (older or concurrent
        with different content: keep the server's).
    """
    if server is None:
        return "create"
    if deleted and server.deleted:
        return "unchanged"
    same = deleted == server.deleted and (deleted or content == server.content)
    server_at = server.client_updated_at
    if same and (server_at is None or updated_at <= server_at):
        return "unchanged"
    if server_at is None or updated_at > server_at:
        return "apply"
    return "conflict"
