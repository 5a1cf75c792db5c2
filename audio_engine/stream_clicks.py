"""A bleeding metronome in a live stream: what the stream knows of the target grid's lines.

The offline removal (:func:`audio_engine.dsp.metronome.metronome_clicks`) sees the whole take;
a stream learns the click from the recent grid lines (``RECENT_CLICKS``) and the onsets
before the one it judges, so that any chunking judges every onset alike:

- each grid line's flux vector once the frames around it exist, and what its click leaves
  50 ms on once those frames exist (:func:`~audio_engine.dsp.metronome.remain_shares`);
- the click signature of the lines before an onset
  (:func:`~audio_engine.dsp.metronome.click_signature`, or for a metronome heard alone
  :func:`~audio_engine.dsp.metronome.lone_click_signature`, or under notes held across
  the lines :func:`~audio_engine.dsp.metronome.dying_click_signature`), cached until they
  change;
- the notes heard on grid lines before any signature could be learnt, judged again by the
  next one (:meth:`GridClicks.rejudge`);
- the onsets on grid lines judged so far, from which the report learns the click again as
  it is heard on the lines (:meth:`GridClicks.refined`, as offline
  :func:`~audio_engine.dsp.metronome.refined_signature`).

The spectra stay with :class:`audio_engine.stream.StreamAnalyzer`, which hands in what
this module reads from them (a flux vector, a leftover share).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from audio_engine.dsp.metronome import (
    CLICK_WINDOW_FRAMES,
    MIN_DYING_LINES,
    MIN_REMAIN_SHARE,
    MIN_TIMED_CLICKS,
    classify_clicks,
    click_signature,
    dying_click_signature,
    grid_offsets_s,
    is_timed_click,
    lone_click_signature,
    refined_signature,
    remain_limit,
    timed_click_offset,
)
from audio_engine.errors import StateVersionError

RECENT_CLICKS = 48  # grid lines remembered for the metronome signature
RECENT_NOTES = 32  # off-grid notes remembered for the metronome signature
MIN_CLICKS = 8


@dataclass(frozen=True, slots=True)
class Judge:
    """The metronome signature an onset on a grid line was judged by, and the grid lines
    it was learnt from (whose leftovers set the limit of a click's)."""

    signature: NDArray[np.float32]
    lines: tuple[int, ...]


@dataclass(slots=True)
class Unjudged:
    """A report note on a grid line heard before a metronome signature existed."""

    frame: int
    time_s: float
    vector: NDArray[np.float32]
    remain: float
    followed: bool
    timed_remain: float  # what it leaves, as read for a metronome told by its timing


class GridClicks:
    """The target grid's lines in a stream and the metronome learnt from them.

    Parameters
    ----------
    period_frames : float
        The grid's period in frames.
    fps : float
        Frame rate in Hz.
    grid_start_s : float
        Time of one grid line in seconds.
    offset_s : float
        The detector's constant time offset added to onset times (seconds).
    delta : float
        The peak-picking threshold (onset-strength units).
    remain_frames : int
        Frames after a line at which what it leaves is measured.
    """

    def __init__(
        self,
        period_frames: float,
        fps: float,
        grid_start_s: float,
        *,
        offset_s: float,
        delta: float,
        remain_frames: int,
    ) -> None:
        self.period_frames = period_frames
        self._fps = fps
        self._grid_start_s = grid_start_s
        self._offset_s = offset_s
        self._delta = delta
        self.remain_frames = remain_frames
        self._lines: deque[tuple[int, NDArray[np.float32]]] = deque()  # (frame, flux vector)
        self._next_line = 0
        # what each line's click leaves (frame of the line: share), and the lines (frame,
        # frame of their flux vector) not measured yet
        self._remains: dict[int, float] = {}
        self._remains_changed = 0  # measurements and deletions of _remains so far
        self._limit_key: tuple[int, int] | None = None
        self._limit: float | None = None  # remain_limit of the recent lines, for that key
        self._unmeasured: deque[tuple[int, int]] = deque()
        self._offgrid: deque[NDArray[np.float32]] = deque(maxlen=RECENT_NOTES)
        self._offgrid_added = 0  # off-grid notes remembered so far (a version of _offgrid)
        # what the recent off-grid notes leave 50 ms on, and the frames of the flux vectors
        # of those not measured yet (for a metronome told by its timing)
        self._offgrid_remains: deque[float] = deque(maxlen=RECENT_NOTES)
        self._offgrid_unmeasured: deque[int] = deque()
        # (frame, seconds from its line) of the recent onsets on grid lines, and their count
        self._ongrid: deque[tuple[int, float]] = deque()
        self._ongrid_added = 0
        # the signature learnt by shape (click_signature), and the lines and off-grid notes
        # it was learnt from; for a metronome heard alone, also the onsets on the lines
        self._shape_key: tuple[int, int, int, int] | None = None
        self._shaped: Judge | None = None
        self._lone_key: tuple[int, int, int, int, int] | None = None
        self._lone: Judge | None = None
        # ... and, for a held note on every line, from the lines where what sounds dies away
        self._dying_key: tuple[int, int, int, int, int] | None = None
        self._dying: Judge | None = None
        self._unjudged: deque[Unjudged] = deque()
        # the onsets on grid lines judged for the report: (frame, seconds from its line,
        # flux vector, what it leaves, whether an onset followed at once), their count, and
        # the last refinement
        self._heard: deque[tuple[int, float, NDArray[np.float32], float, bool]] = deque()
        self._heard_added = 0
        # ... and for a metronome told by its timing: (frame, seconds from its line, what
        # it leaves as read for that, whether an onset followed at once)
        self._timed: deque[tuple[int, float, float, bool]] = deque()
        self._refined_key: tuple[int, int, int, int] | None = None
        self._refined: NDArray[np.float32] | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled grid (within a stream's checkpoint).

        Raises
        ------
        StateVersionError
            The state was pickled by an engine that kept other attributes.
        """
        expected = _state_names()
        if set(state) != expected:
            raise StateVersionError(
                "the stream's metronome state was saved by another version of the engine "
                f"(missing {sorted(expected - set(state))[:5]}, "
                f"unknown {sorted(set(state) - expected)[:5]})"
            )
        self.__dict__.update(state)

    def line_frame(self, k: int) -> int:
        """The frame of grid line ``k``: line 0 is the metronome's first click, or the first
        line at or after time 0 when the grid started before the recording (no click sounds
        before the first: :func:`~audio_engine.dsp.metronome.metronome_clicks`)."""
        period_s = self.period_frames / self._fps
        g = self._grid_start_s
        first = g if g >= 0 else g - math.floor(g / period_s) * period_s
        return round((first + k * period_s) * self._fps)

    def add_lines(
        self,
        n_frames: int,
        *,
        final: bool,
        flux_at: Callable[[int, int], tuple[int, NDArray[np.float32]]],
        remain_at: Callable[[int], float],
    ) -> None:
        """Remember the flux at each grid line once the frames around it exist
        (``flux_at(frame, w)``: the frame within ``±w`` of largest flux and its vector), and
        what its click leaves once the frames after it exist (``remain_at(frame)``)."""
        while True:
            c = self.line_frame(self._next_line)
            if (c + CLICK_WINDOW_FRAMES >= n_frames and not final) or c >= n_frames:
                break
            at, vector = flux_at(c, CLICK_WINDOW_FRAMES)
            self._lines.append((c, vector))
            self._unmeasured.append((c, at))
            self._next_line += 1
        while self._unmeasured and (
            final or self._unmeasured[0][1] + self.remain_frames < n_frames
        ):
            c, at = self._unmeasured.popleft()
            self._remains[c] = remain_at(at)
            self._remains_changed += 1
        while self._offgrid_unmeasured and (
            final or self._offgrid_unmeasured[0] + self.remain_frames < n_frames
        ):
            self._offgrid_remains.append(remain_at(self._offgrid_unmeasured.popleft()))

    def judge(
        self, frame: int, time_s: float, vector: NDArray[np.float32], at: int
    ) -> tuple[bool, Judge | None]:
        """Whether the onset starting at ``frame`` (``time_s``; its flux vector ``vector``
        read at frame ``at``) lies on a grid line, and the metronome signature (learnt from
        the grid lines and the onsets before it) to judge it by: None off the grid, before
        ``MIN_CLICKS`` lines, or when they carry no metronome."""
        k = max(0, round((frame - self.line_frame(0)) / self.period_frames))
        if abs(frame - self.line_frame(k)) > CLICK_WINDOW_FRAMES:
            self._offgrid.append(vector)
            self._offgrid_added += 1
            self._offgrid_unmeasured.append(at)
            return False, None
        # the grid lines before this onset (by frame, so the chunking does not matter)
        horizon = frame - CLICK_WINDOW_FRAMES - 1
        oldest = horizon - RECENT_CLICKS * self.period_frames
        while self._lines and self._lines[0][0] < oldest:
            self._lines.popleft()
        while self._ongrid and self._ongrid[0][0] < oldest - CLICK_WINDOW_FRAMES:
            self._ongrid.popleft()
        usable = [(c, v) for c, v in self._lines if c <= horizon]
        judge = self._learn(usable, frame) if len(usable) >= MIN_CLICKS else None
        offset = grid_offsets_s(
            np.array([time_s - self._offset_s]), self.period_frames / self._fps,
            self._grid_start_s,
        )
        self._ongrid.append((frame, float(offset[0])))
        self._ongrid_added += 1
        return True, judge

    def _learn(self, usable: list[tuple[int, NDArray[np.float32]]], frame: int) -> Judge | None:
        """The metronome signature of the recent grid lines ``usable`` (frame, flux vector)
        and the onsets before ``frame``; for a metronome heard alone, and for one under a
        note held across the lines, with what the lines measured by then leave."""
        # each changes only with the grid lines and the onsets it is learnt from
        key = (usable[0][0], usable[-1][0], len(usable), self._offgrid_added)
        clicks: NDArray[np.float32] | None = None
        if key != self._shape_key:
            clicks = np.asarray([v for _, v in usable])
            notes = np.asarray(self._offgrid) if self._offgrid else clicks[:0]
            signature = click_signature(
                clicks, notes, self._delta, lambda: self._line_offsets([c for c, _ in usable])
            )
            self._shaped = None if signature is None else Judge(
                signature, tuple(c for c, _ in usable)
            )
            self._shape_key = key
        if self._shaped is not None:
            return self._shaped
        lone_key = (*key, self._ongrid_added)
        if lone_key != self._lone_key:
            if clicks is None:
                clicks = np.asarray([v for _, v in usable])
            first = usable[0][0] - CLICK_WINDOW_FRAMES
            offsets = np.array([o for f, o in self._ongrid if f >= first], dtype=np.float64)
            # lines surely measured: their leftover's frame is before this onset's
            last = frame - CLICK_WINDOW_FRAMES - self.remain_frames
            remains = np.array(
                [self._remains[c] for c, _ in usable if c < last], dtype=np.float64
            )
            signature = lone_click_signature(clicks, offsets, remains, self._delta)
            self._lone = None if signature is None else Judge(
                signature, tuple(c for c, _ in usable)
            )
            self._lone_key = lone_key
        if self._lone is not None:
            return self._lone
        # a held note on every line: the lines measured by then where what sounds dies away
        last = frame - CLICK_WINDOW_FRAMES - self.remain_frames
        measured = [(c, v) for c, v in usable if c < last]
        dying_key = (*key, len(measured))
        if dying_key != self._dying_key:
            self._dying = None
            remains = np.array([self._remains[c] for c, _ in measured], dtype=np.float64)
            if int((remains <= MIN_REMAIN_SHARE).sum()) >= MIN_DYING_LINES:
                lines = np.asarray([v for _, v in measured])
                notes = np.asarray(self._offgrid) if self._offgrid else lines[:0]
                offsets = self._line_offsets([c for c, _ in measured])
                signature = dying_click_signature(lines, remains, notes, self._delta, offsets)
                if signature is not None:
                    self._dying = Judge(signature, tuple(c for c, _ in measured))
            self._dying_key = dying_key
        return self._dying

    def _line_offsets(self, lines: list[int]) -> NDArray[np.float64]:
        """Seconds from each grid line (frame) to the recent onset heard on it, NaN where
        none was."""
        at = np.asarray(lines, dtype=np.int64)
        if not self._ongrid:
            return np.full(at.shape[0], np.nan)
        frames = np.fromiter((f for f, _ in self._ongrid), dtype=np.int64)  # in time order
        offsets = np.fromiter((o for _, o in self._ongrid), dtype=np.float64)
        first = np.minimum(np.searchsorted(frames, at - CLICK_WINDOW_FRAMES), frames.shape[0] - 1)
        heard = np.abs(frames[first] - at) <= CLICK_WINDOW_FRAMES
        out: NDArray[np.float64] = np.where(heard, offsets[first], np.nan)
        return out

    def limit(self, judge: Judge) -> float:
        """The most an onset judged by ``judge`` may leave behind and be a click alone."""
        remains = [self._remains[c] for c in judge.lines]
        return remain_limit(np.asarray(remains, dtype=np.float64))

    def hear(
        self,
        frame: int,
        time_s: float,
        vector: NDArray[np.float32],
        remain: float,
        followed: bool,
        timed_remain: float,
    ) -> float:
        """Remember an onset on a grid line (at ``frame``, ``time_s``) judged for the report:
        its flux vector, what it leaves behind (``remain``; ``timed_remain`` as read for a
        metronome told by its timing), whether the next onset followed at once. Returns its
        seconds from its line."""
        offset = self.offset_of(time_s)
        self._heard.append((frame, offset, vector, remain, followed))
        self._heard_added += 1
        self._timed.append((frame, offset, timed_remain, followed))
        return offset

    def offset_of(self, time_s: float) -> float:
        """Seconds from the onset at ``time_s`` to its nearest grid line."""
        offset = grid_offsets_s(
            np.array([time_s - self._offset_s]), self.period_frames / self._fps,
            self._grid_start_s,
        )
        return float(offset[0])

    def timed(self) -> tuple[float, float] | None:
        """The offset from its lines (seconds) of a metronome told by its timing and its
        short sound (:func:`~audio_engine.dsp.metronome.timed_click_offset`), from the recent
        onsets heard on the lines and off them, and the most a click of it may leave
        behind (:func:`~audio_engine.dsp.metronome.remain_limit` of the recent lines); None
        when they show none. Off the grid, what a note leaves is read 50 ms on only."""
        if len(self._offgrid_remains) < MIN_TIMED_CLICKS or len(self._timed) < MIN_TIMED_CLICKS:
            return None  # (timed_click_offset's first tests, before any array is built)
        limit = self._recent_limit()
        if limit is None:
            return None
        if sum(1 for _, _, r, f in self._timed if r <= limit and not f) < MIN_TIMED_CLICKS:
            return None
        if sum(1 for r in self._offgrid_remains if r <= limit) > 0.5 * len(self._offgrid_remains):
            return None
        n_on, n_off = len(self._timed), len(self._offgrid_remains)
        offsets = np.concatenate([np.array([o for _, o, _, _ in self._timed]), np.zeros(n_off)])
        remains = np.concatenate([np.array([r for _, _, r, _ in self._timed]),
                                  np.asarray(self._offgrid_remains, dtype=np.float64)])
        followed = np.concatenate([np.array([f for _, _, _, f in self._timed], dtype=np.bool_),
                                   np.zeros(n_off, dtype=np.bool_)])
        on_grid = np.arange(n_on + n_off) < n_on
        centre = timed_click_offset(offsets, on_grid=on_grid, dies=remains <= limit,
                                    followed=followed)
        return None if centre is None else (centre, limit)

    def could_be_timed_click(self, timed_remain: float, followed: bool) -> bool:
        """Whether an onset on a line that leaves ``timed_remain`` (followed at once or not)
        could be a click of a metronome told by its timing: it dies away as a click alone
        does, or the next onset comes too soon to tell. One that cannot need not ask
        :meth:`timed`: the answer changes only with such onsets (and then judges again the
        notes kept before)."""
        if followed:
            return True
        limit = self._recent_limit()
        return limit is not None and timed_remain <= limit

    def _recent_limit(self) -> float | None:
        """:func:`~audio_engine.dsp.metronome.remain_limit` of the recent lines measured
        (None before any), cached until those change."""
        key = (self._remains_changed, self._lines[0][0] if self._lines else -1)
        if key != self._limit_key:
            measured = [self._remains[c] for c, _ in self._lines if c in self._remains]
            self._limit = (remain_limit(np.asarray(measured, dtype=np.float64))
                           if measured else None)
            self._limit_key = key
        return self._limit

    def rejudge_timed(self, centre_s: float, limit: float) -> list[float]:
        """Judge the notes kept by :meth:`keep_unjudged` as the clicks of a metronome at
        ``centre_s`` from its lines (:meth:`timed`) and forget them: the start times of
        those that were clicks."""
        out = [
            u.time_s
            for u in self._unjudged
            if is_timed_click(np.array([self.offset_of(u.time_s)]), centre_s,
                              dies=u.timed_remain <= limit, followed=u.followed)[0]
        ]
        self._unjudged.clear()
        return out

    def refined(self, judge: Judge) -> NDArray[np.float32]:
        """The click of ``judge`` learnt again from the onsets heard on its lines so far that
        leave no more than a click alone (:func:`~audio_engine.dsp.metronome.refined_signature`)."""
        key = (judge.lines[0], judge.lines[-1], len(judge.lines), self._heard_added)
        if key == self._refined_key and self._refined is not None:
            return self._refined
        limit = self.limit(judge)
        first = judge.lines[0] - CLICK_WINDOW_FRAMES
        candidates = [
            (o, v) for f, o, v, r, followed in self._heard
            if f >= first and not followed and r <= limit
        ]
        refined = (
            refined_signature(
                judge.signature,
                np.stack([v for _, v in candidates]),
                np.array([o for o, _ in candidates], dtype=np.float64),
            )
            if candidates
            else judge.signature
        )
        self._refined_key, self._refined = key, refined
        return refined

    def keep_unjudged(self, note: Unjudged) -> None:
        """Remember a report note heard on a grid line before there was a signature."""
        self._unjudged.append(note)

    def rejudge(self, judge: Judge) -> list[float]:
        """Judge the notes kept by :meth:`keep_unjudged` by ``judge`` (the first signature
        learnt after them) and forget them: the start times of those that were clicks."""
        if not self._unjudged:
            return []
        limit = self.limit(judge)
        vectors = np.stack([u.vector for u in self._unjudged])
        clicks = classify_clicks(vectors, self.refined(judge))
        out = [
            u.time_s
            for u, is_click in zip(self._unjudged, clicks, strict=True)
            if is_click and not u.followed and u.remain <= limit
        ]
        self._unjudged.clear()
        return out

    def first_unmeasured(self) -> int:
        """The earliest frame whose flux a line still to be measured or registered reads
        (the analyzer keeps its spectra from a lag before it)."""
        first = (self._unmeasured[0][1] if self._unmeasured
                 else self.line_frame(self._next_line) - CLICK_WINDOW_FRAMES)
        if self._offgrid_unmeasured:
            first = min(first, min(self._offgrid_unmeasured))
        return first

    def trim(self, decided: int, pending: int | None, rise: int) -> None:
        """Forget the lines and notes that no onset decided after frame ``decided`` (its
        start up to ``rise`` frames earlier), nor the pending onset first at frame
        ``pending``, can use."""
        reach = CLICK_WINDOW_FRAMES + 2 + rise + RECENT_CLICKS * self.period_frames
        oldest = decided - reach
        while self._lines and self._lines[0][0] < oldest:
            self._lines.popleft()
        if pending is not None:
            oldest = min(oldest, pending - reach)
        while self._remains and (line := next(iter(self._remains))) < oldest:
            del self._remains[line]  # the lines in the order measured: by frame
            self._remains_changed += 1
        while self._unjudged and self._unjudged[0].frame < oldest:
            self._unjudged.popleft()
        while self._heard and self._heard[0][0] < oldest:
            self._heard.popleft()
        while self._timed and self._timed[0][0] < oldest:
            self._timed.popleft()


def _state_names() -> frozenset[str]:
    """The attributes of a GridClicks (every one set whatever the configuration)."""
    grid = GridClicks(50.0, 100.0, 0.5, offset_s=0.0, delta=3.0, remain_frames=5)
    return frozenset(vars(grid))
