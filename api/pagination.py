"""Keyset pagination shared by the list routes: opaque cursors and the ``limit`` parameter.

A cursor is the URL-safe base64 (unpadded) of a small JSON object ``{"k": kind, "v": [...]}``
naming the last row of a page, e.g. its ``(started_at, id)``. Clients must treat it as
opaque; a cursor that does not decode, or belongs to another kind of list, is refused with
422 ``invalid_cursor``. Typical use::

    limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
    after = decode_time_id_cursor(cursor, kind="sessions") if cursor else None
    stmt = stmt.where(keyset_before(Model.started_at, Model.id, after)) ...  # newest first
    rows = (await db.execute(stmt.limit(limit + 1))).scalars().all()
    page, next_cursor = split_page(rows, limit, lambda r: encode_time_id_cursor(...))
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from api.errors import UnprocessableError

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CursorQuery",
    "LimitQuery",
    "decode_cursor",
    "decode_time_id_cursor",
    "encode_cursor",
    "encode_time_id_cursor",
    "keyset_after",
    "keyset_before",
    "split_page",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_CHARS = 512

LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1..{MAX_LIMIT}.")
]
CursorQuery = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_CHARS,
          description="The `next_cursor` of the previous page (opaque); absent for the first."),
]

T = TypeVar("T")


def _invalid(cursor: str, why: str) -> UnprocessableError:
    shown = cursor if len(cursor) <= 40 else cursor[:37] + "..."
    return UnprocessableError(f"cursor {shown!r} is not valid here: {why}",
                              code="invalid_cursor")


def encode_cursor(kind: str, values: Sequence[str | int | float | None]) -> str:
    """An opaque cursor for a list of ``kind`` positioned after a row with ``values``."""
    raw = json.dumps({"k": kind, "v": list(values)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, kind: str, arity: int) -> list[Any]:
    """The values of a cursor made by :func:`encode_cursor` (422 ``invalid_cursor`` if bad)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise _invalid(cursor, "it does not decode") from None
    if not isinstance(data, dict) or data.get("k") != kind:
        raise _invalid(cursor, f"it was not made for this list ({kind})")
    values = data.get("v")
    if not isinstance(values, list) or len(values) != arity:
        raise _invalid(cursor, "it has the wrong shape")
    return values


def encode_time_id_cursor(kind: str, at: datetime, row_id: uuid.UUID) -> str:
    """A cursor after the row ``(at, row_id)`` (``at`` must be aware)."""
    return encode_cursor(kind, [at.isoformat(), row_id.hex])


def decode_time_id_cursor(cursor: str, *, kind: str) -> tuple[datetime, uuid.UUID]:
    """The ``(at, row_id)`` of a cursor made by :func:`encode_time_id_cursor`."""
    at_raw, id_raw = decode_cursor(cursor, kind=kind, arity=2)
    if not isinstance(at_raw, str) or not isinstance(id_raw, str):
        raise _invalid(cursor, "it has the wrong shape")
    try:
        at = datetime.fromisoformat(at_raw)
        row_id = uuid.UUID(hex=id_raw)
    except ValueError:
        raise _invalid(cursor, "its position does not parse") from None
    if at.tzinfo is None:
        raise _invalid(cursor, "its time has no time zone")
    try:
        at = at.astimezone(UTC)
    except OverflowError:
        raise _invalid(cursor, "its time is out of range") from None
    return at, row_id


def keyset_before(
    at_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[uuid.UUID],
    after: tuple[datetime, uuid.UUID],
) -> ColumnElement[bool]:
    """Rows after ``after`` in *descending* ``(at, id)`` order (the next page, newest first)."""
    at, row_id = after
    return or_(at_col < at, and_(at_col == at, id_col < row_id))


def keyset_after(
    at_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[uuid.UUID],
    after: tuple[datetime, uuid.UUID],
) -> ColumnElement[bool]:
    """Rows after ``after`` in *ascending* ``(at, id)`` order (the next page, oldest first)."""
    at, row_id = after
    return or_(at_col > at, and_(at_col == at, id_col > row_id))


def split_page(
    rows: Sequence[T], limit: int, cursor_of: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """Cut ``rows`` (fetched with ``limit + 1``) to a page and the cursor of the next one."""
    page = list(rows[:limit])
    next_cursor = cursor_of(page[-1]) if len(rows) > limit and page else None
    return page, next_cursor
