"""Event envelopes published on the durable queue (:mod:`mpt.queue`).

``stream.summary.v1`` — published by the engine at the end of a stream with a practice
session, consumed by the API into practice metrics::

    {"event_id": str, "stream_id": str, "user_id": str, "session_id": str,
     "started_at": ISO 8601 UTC, "ended_at": ISO 8601 UTC, "summary": {...}}

Its ``event_id`` is a UUID5 of the stream id, so a resumed or re-sent stream publishes the
same id and the queue (and the consumer) keep one copy.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from mpt.errors import EventError

__all__ = [
    "STREAM_SUMMARY_NAMESPACE",
    "STREAM_SUMMARY_TOPIC",
    "stream_summary_event",
    "stream_summary_event_id",
]

STREAM_SUMMARY_TOPIC: Final = "stream.summary.v1"
#: Namespace of the UUID5 event ids of stream summaries, itself
#: ``uuid5(NAMESPACE_URL, "urn:mpt:event:stream.summary.v1")``. Never change it: event ids
#: derived before and after would differ, and a re-sent stream would be counted twice.
STREAM_SUMMARY_NAMESPACE: Final = uuid.UUID("19b54947-9908-5835-a89f-fe41d75410d7")


def stream_summary_event_id(stream_id: str | uuid.UUID) -> str:
    """The event id of a stream's summary: ``uuid5(STREAM_SUMMARY_NAMESPACE, stream_id)``.

    Parameters
    ----------
    stream_id : str or uuid.UUID
        The stream's id (a UUID is used in its canonical lower-case form).

    Returns
    -------
    str
        The event id, a canonical UUID string.

    Raises
    ------
    EventError
        ``stream_id`` is empty.
    """
    return str(uuid.uuid5(STREAM_SUMMARY_NAMESPACE, _id("stream_id", stream_id)))


def stream_summary_event(
    *,
    stream_id: str | uuid.UUID,
    user_id: str,
    session_id: str | uuid.UUID,
    started_at: datetime,
    ended_at: datetime,
    summary: Mapping[str, Any],
) -> tuple[str, dict[str, Any]]:
    """Build a ``stream.summary.v1`` event.

    Parameters
    ----------
    stream_id : str or uuid.UUID
        The stream's id; it determines the event id.
    user_id : str
        The user who streamed (the token's ``sub``).
    session_id : str or uuid.UUID
        The practice session the stream belongs to.
    started_at, ended_at : datetime
        When the stream started and ended; timezone-aware, ``ended_at >= started_at``.
        Written as ISO 8601 in UTC.
    summary : mapping
        The stream's timing summary; must be JSON (no NaN or infinity). Copied.

    Returns
    -------
    event_id : str
        :func:`stream_summary_event_id` of ``stream_id``.
    payload : dict
        The envelope (it includes ``event_id``), ready for
        ``queue.publish(STREAM_SUMMARY_TOPIC, event_id, payload)``.

    Raises
    ------
    EventError
        An id is empty, a time is naive or the stream ends before it starts, or the summary
        is not JSON; the message names the field.
    """
    stream = _id("stream_id", stream_id)
    user = _id("user_id", user_id)
    session = _id("session_id", session_id)
    start, end = _utc("started_at", started_at), _utc("ended_at", ended_at)
    if end < start:
        raise EventError(
            f"ended_at {end.isoformat()} is before started_at {start.isoformat()} "
            f"in the summary of stream {stream!r}"
        )
    if not isinstance(summary, Mapping):
        raise EventError(f"summary must be a mapping, got {type(summary).__name__}")
    try:
        summary_copy = json.loads(json.dumps(dict(summary), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise EventError(f"summary of stream {stream!r} is not JSON: {exc}") from None
    event_id = stream_summary_event_id(stream)
    return event_id, {
        "event_id": event_id,
        "stream_id": stream,
        "user_id": user,
        "session_id": session,
        "started_at": start.isoformat(),
        "ended_at": end.isoformat(),
        "summary": summary_copy,
    }


def _id(field: str, value: str | uuid.UUID) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise EventError(f"{field} must be a non-empty string or UUID, got {value!r}")
    return value


def _utc(field: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise EventError(f"{field} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise EventError(f"{field} {value.isoformat()} has no time zone; give it in UTC")
    return value.astimezone(UTC)
