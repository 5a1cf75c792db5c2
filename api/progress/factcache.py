"""A per-process cache of each student's session facts, keyed by the student's data version.

Points, streaks, progress, charts and recommendations all read a student's whole history
as :class:`~api.progress.rules.SessionFacts` (two queries and a reduction per session), so
without a cache their cost grows with the history. The version is the pair
``(users.change_seq, users.facts_seq)``, read with the student's row at the start of the
request: every write to a student's sessions, tags or segments bumps ``change_seq``
(:mod:`api.practice.changes`; manual metrics are written only with their session) and the
metrics of a stream or recording bump ``facts_seq``
(:func:`api.metrics.service.record_metrics`), each in the transaction of the write. An
entry is used only when its version equals the one just read, so a reader never gets facts
older than the version it saw; facts loaded after a concurrent write are newer than their
key and are simply reloaded by the next reader, who sees the new version.

A write that only adds sessions (a session created by hand, a sync batch of new ones) may
instead :meth:`FactsCache.extend` the entry of the version just before it, after its commit:
the facts it computed for its new sessions are added to that entry under the version it
committed. This is exact because writes of one student are serialised by the lock on their
row, so the version before the write and the write's own give the whole change; an entry
that already holds one of the new sessions (read after the commit, stored under the older
version) is left alone.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime

from api.progress.rules import SessionFacts

__all__ = ["FACTS_CACHE_KEY", "FactsCache", "FactsVersion"]

#: Where a session factory carries the cache (``async_sessionmaker(..., info={...})``).
FACTS_CACHE_KEY = "facts_cache"

FactsVersion = tuple[int, int]

# version, facts (oldest first), and their session ids once an extend has needed them
_Entry = tuple[FactsVersion, tuple[SessionFacts, ...], set[uuid.UUID] | None]


class FactsCache:
    """Least-recently-used map ``(student, pieces) -> (version, facts)``, at most
    ``max_entries`` students' histories.

    An entry also keeps the set of its session ids once it has been extended (built at the
    first :meth:`extend`, then grown in place), so a write need not hash every session of a
    long history to see that its own are not there yet."""

    def __init__(self, max_entries: int = 2048) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[uuid.UUID, bool], _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry (the counters stay)."""
        self._entries.clear()

    def get(self, student_id: uuid.UUID, *, pieces: bool,
            version: FactsVersion) -> tuple[SessionFacts, ...] | None:
        """The cached facts if they were stored under ``version`` (else None). An entry
        with piece ids also answers a request without them."""
        for key in ((student_id, pieces), (student_id, True)):
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
        self.misses += 1
        return None

    def holds(self, student_id: uuid.UUID) -> bool:
        """Whether an entry of the student is cached, of any version."""
        return (student_id, False) in self._entries or (student_id, True) in self._entries

    def put(self, student_id: uuid.UUID, *, pieces: bool, version: FactsVersion,
            facts: Sequence[SessionFacts]) -> tuple[SessionFacts, ...]:
        """Store ``facts`` (oldest first) under ``version``; returns them as a tuple."""
        frozen = tuple(facts)
        key = (student_id, pieces)
        self._entries[key] = (version, frozen, None)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return frozen

    def extend(self, student_id: uuid.UUID, *, base: FactsVersion, version: FactsVersion,
               added: Callable[[bool], Sequence[SessionFacts]]) -> int:
        """Store the entries held under ``base`` again under ``version`` with the facts
        ``added(pieces)`` inserted in start order (after any with the same start).

        Call it only after committing a write that moved the student's data from ``base``
        to ``version`` by adding exactly these sessions (see the module docstring). An entry
        under another version, or already holding one of the added sessions, is left as
        it is. Returns how many entries were extended (0, 1 or 2).
        """
        extended = 0
        for pieces in (False, True):
            key = (student_id, pieces)
            entry = self._entries.get(key)
            if entry is None or entry[0] != base:
                continue
            new = sorted(added(pieces), key=_started_at)
            new_ids = {f.session_id for f in new}
            ids = entry[2] if entry[2] is not None else {f.session_id for f in entry[1]}
            if not new_ids.isdisjoint(ids):
                continue
            facts = list(entry[1])
            for fact in new:
                facts.insert(bisect_right(facts, fact.started_at, key=_started_at), fact)
            ids |= new_ids  # in place: the entry holding this set is replaced here
            self._entries[key] = (version, tuple(facts), ids)
            extended += 1
        return extended


def _started_at(facts: SessionFacts) -> datetime:
    return facts.started_at
