"""Metronome bleed: clicks on a metronome grid that must not count as notes.

A metronome leaking from headphones into the microphone adds the same short, quiet sound
at every grid line. Its signature is estimated from the quietest grid positions (where the
student rests, or has drifted off the grid, the click is alone): their per-band flux must
be alike (one sound, not notes of varying pitch) and clearly weaker than the student's
notes; where notes held across the lines spoil the quietest ones, it is learnt from the
lines where what sounds dies away at once, if their onsets keep a machine's time. The click
is then learnt again from the onsets on every line that look like it and leave little. An
onset on a grid line is a click when its flux has the click's spectral shape and no more
than a click's strength; a note played with the click keeps its own flux and stays. A note
whose attack is slow (a clarinet's) has hardly any flux of its own when the click sounds;
it is told apart by what is left 50 and 70 ms later, when a click alone has died away.
The grid is either the target's (given tempo and first click, up to the last onset heard)
or found blind: an exactly periodic series of onsets that fills nearly every line, as no
player does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from audio_engine.dsp.onsets import _max_filter_bands_kernel

CLICK_WINDOW_FRAMES = 2  # an onset within this many frames of a grid line is on it
QUIET_SHARE = 0.15  # the quietest share of grid positions estimates the click alone
MIN_SIMILARITY = 0.7  # cosine similarity of a click's flux to the click signature
MAX_OUTSIDE_SHARE = 0.3  # a click alone has at most this share of its flux outside them
CLICK_SIMILARITY = 0.8  # cosine similarity of a click alone to the signature
REFINE_SIMILARITY = 0.6  # ... of a click heard on a line to it, to learn the click again
MIN_REFINED = 3  # clicks heard on the lines needed to learn the click again
CLUSTER_HALF_WIDTH_S = 0.0015  # a metronome's clicks lie this close to their median offset
NOTE_LIKE = 0.5  # the student's notes this like the quiet lines (median cosine) ...
MACHINE_MARGIN = 0.3  # ... are taken for them unless the quiet lines are this much more alike
FOOTPRINT_LEVEL = 0.1  # bands where the click has this share of its peak flux are its own
FOOTPRINT_SPREAD = 2  # ... and their neighbours within this many bands
SUBGRID_COVERAGE = 0.6  # a finer grid inside a found one: players cover some of its clicks
MACHINE_CANDIDATES = 8  # sharpest interval peaks tried for a partly heard metronome ...
MACHINE_GRID_COVERAGE = 0.5  # ... whose clicks are heard apart from notes on this share
MACHINE_GRID_SPREAD_S = 0.0008  # ... of its lines, this close to their median offset
MAX_SPREAD_S = 0.0012  # median absolute deviation of a metronome's onsets from its grid
MIN_TIMED_CLICKS = 8  # clicks heard alone, in a machine's time, that tell a metronome ...
TIMED_SHARE = 0.8  # ... being this share of the on-grid onsets that die away alone
TIMED_RISE_FRAMES = 2  # frames a note rises before its onset-strength peak
LONE_COVERAGE = 0.85  # a metronome heard alone has an onset on nearly every grid line,
LONE_AGREEMENT = 0.9  # ... nearly all of them at one offset from their lines (MAX_SPREAD_S),
LONE_SIMILARITY = 0.95  # ... the same flux shape on all lines (cosine to their median)
MIN_BLIND_ON_TARGET = 8  # clicks found blind that show the target's metronome was found,
ON_TARGET_S = 0.005  # ... within this of its lines
REMAIN_S = 0.05  # what an onset leaves behind is measured this long after it
LATE_REMAIN_S = 0.07  # ... and this long, for a note begun a little after its click
MIN_REMAIN_SHARE = 0.35  # a note leaves more than this share of its flux, a click alone less
MIN_DYING_LINES = 5  # lines where what sounds dies away at once, to learn the click from
CLICK_REMAIN_FACTOR = 2.0  # ... and more than this many times what a click alone leaves


FLUX_BLOCK_FRAMES = 8192
"""Frames whose per-band flux :func:`flux_totals` holds at a time."""


def band_flux(
    S: NDArray[np.float32], lag: int, max_bands: int, ref: NDArray[np.float32] | None = None
) -> NDArray[np.float32]:
    """Per-band positive SuperFlux ``max(S[t] - ref[t - lag], 0)`` (``ref`` 0 before the first
    frame), shape (n_frames, n_bands); ``ref`` is the max-filtered ``S`` when the caller has
    it already. The click judge reads only its totals and a few rows (:func:`flux_totals`,
    :func:`band_flux_rows`): this whole array is their definition."""
    S = np.ascontiguousarray(S, dtype=np.float32)
    if ref is None:
        ref = _max_filter_bands_kernel(S, max_bands) if max_bands > 0 else S
    return band_flux_rows(S, ref, lag, np.arange(S.shape[0], dtype=np.int64))


def band_flux_rows(
    S: NDArray[np.float32], ref: NDArray[np.float32], lag: int, frames: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Rows ``frames`` of :func:`band_flux` (``ref`` given), each written once by a kernel
    (the whole-array expression held three temporaries the size of ``S``)."""
    return _band_flux_rows_kernel(
        np.ascontiguousarray(S, dtype=np.float32), np.ascontiguousarray(ref, dtype=np.float32),
        lag, np.ascontiguousarray(frames, dtype=np.int64),
    )


@njit(cache=True, nogil=True)
def _band_flux_rows_kernel(
    S: NDArray[np.float32], ref: NDArray[np.float32], lag: int, frames: NDArray[np.int64]
) -> NDArray[np.float32]:
    out = np.empty((frames.shape[0], S.shape[1]), dtype=np.float32)
    zero = np.float32(0.0)
    for k in range(frames.shape[0]):
        t = frames[k]
        for b in range(S.shape[1]):
            prev = ref[t - lag, b] if t >= lag else zero
            out[k, b] = max(S[t, b] - prev, zero)
    return out


def flux_totals(S: NDArray[np.float32], ref: NDArray[np.float32], lag: int) -> NDArray[np.float32]:
    """``band_flux(S, lag, _, ref).sum(axis=1)``, the same values, a block of frames at a
    time (the per-band flux of a long recording would be one more array the size of
    ``S``)."""
    n = S.shape[0]
    out = np.empty(n, dtype=np.float32)
    for a in range(0, n, FLUX_BLOCK_FRAMES):
        frames = np.arange(a, min(n, a + FLUX_BLOCK_FRAMES), dtype=np.int64)
        out[a : a + frames.shape[0]] = band_flux_rows(S, ref, lag, frames).sum(axis=1)
    return out


def peak_frames(
    totals: NDArray[np.float32], frames: NDArray[np.int64], w: int
) -> NDArray[np.int64]:
    """The frame within ``±w`` of each of ``frames`` with the largest of ``totals`` (the
    total flux of each frame, :func:`flux_totals`)."""
    n = totals.shape[0]
    idx = np.clip(frames[:, None] + np.arange(-w, w + 1)[None, :], 0, n - 1)
    best = np.argmax(totals[idx], axis=1)
    out: NDArray[np.int64] = idx[np.arange(idx.shape[0]), best]
    return out


def remain_shares(
    S: NDArray[np.float32],
    ref: NDArray[np.float32],
    frames: NDArray[np.int64],
    *,
    lag: int,
    ahead: int,
) -> NDArray[np.float64]:
    """What each onset leaves behind: the positive rise of the spectrum ``ahead`` frames
    after its frame over the max-filtered spectrum ``ref`` ``lag`` frames before it, as a
    share of the onset's own flux (the same rise at its frame; 0 when it has none), one
    per frame in ``frames``. A click alone has died away by then; a note played with it is
    still sounding, or still rising if its attack is slow."""
    n = S.shape[0]
    before = ref[np.clip(frames - lag, 0, n - 1)]
    flux = np.maximum(S[frames] - before, 0.0).sum(axis=1)
    left = np.maximum(S[np.clip(frames + ahead, 0, n - 1)] - before, 0.0).sum(axis=1)
    out: NDArray[np.float64] = np.where(flux > 0, left / np.maximum(flux, 1e-12), 0.0)
    return out


def remain_frames(fps: float) -> int:
    """Frames after an onset at which :func:`remain_shares` measures what it left."""
    return max(1, round(REMAIN_S * fps))


def late_remain_frames(fps: float) -> int:
    """Frames after an onset at which what it left is measured a second time
    (:func:`onset_remain`)."""
    return max(remain_frames(fps) + 1, round(LATE_REMAIN_S * fps))


def onset_remain(
    early: ArrayLike, late: ArrayLike, gap: ArrayLike, late_frames: int
) -> NDArray[np.float64]:
    """What onsets on grid lines leave behind, for telling a note from a click alone: the
    larger of each one's :func:`remain_shares` ``early`` (``remain_frames`` after it) and
    ``late`` (``late_frames`` after it), the late one only when the next onset comes more
    than ``late_frames`` after it (``gap`` frames; inf when none does). A note begun 20-40
    ms after its click has hardly risen 50 ms after the click when its attack is slow (a
    flute's), with no onset of its own detected; 70 ms after the click it sounds. Arrays
    of one shape, or scalars (a 0-d array then)."""
    before, after = np.asarray(early, dtype=np.float64), np.asarray(late, dtype=np.float64)
    out: NDArray[np.float64] = np.where(
        np.asarray(gap, dtype=np.float64) <= late_frames, before, np.maximum(before, after)
    )
    return out


def remain_limit(line_remains: NDArray[np.floating]) -> float:
    """The most an onset on a grid line may leave behind (:func:`remain_shares`) and still
    be a click alone: ``MIN_REMAIN_SHARE``, or ``CLICK_REMAIN_FACTOR`` times what a click
    alone leaves where that is more (a reverberant room). What a click alone leaves is the
    least that any grid line leaves (``line_remains``): even the quietest lines can hold a
    note still sounding from before them (a legato clarinet), and with the median of the
    quietest as the click's, notes played with the click were taken for clicks."""
    least = float(np.min(line_remains)) if line_remains.size else 0.0
    return max(MIN_REMAIN_SHARE, CLICK_REMAIN_FACTOR * least)


def quiet_positions(totals: NDArray[np.floating]) -> NDArray[np.bool_]:
    """The grid lines whose total flux is among the quietest ``QUIET_SHARE`` of them (where
    the click sounds alone)."""
    mask: NDArray[np.bool_] = totals <= _quantile(np.sort(totals), QUIET_SHARE)
    return mask


def _cosine(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float64]:
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b)
    out: NDArray[np.float64] = np.where(na * nb > 0, (a @ b) / np.maximum(na * nb, 1e-12), 0.0)
    return out


def grid_frames(n_frames: int, fps: float, period_s: float, click_s: float) -> NDArray[np.int64]:
    """Frames of every grid line ``click_s + k * period_s`` (any integer k) in the signal."""
    first = click_s - np.floor(click_s / period_s) * period_s
    frames = np.round((first + np.arange(0, n_frames / fps / period_s + 1) * period_s) * fps)
    out = frames.astype(np.int64)
    kept: NDArray[np.int64] = out[out < n_frames]
    return kept


def first_click_frame(fps: float, grid_start_s: float) -> int:
    """The frame of the metronome's first click, ``grid_start_s`` (frame 0 for a grid
    that started before the recording); the caller allows a frame for the rounding of
    :func:`grid_frames`."""
    return max(0, round(grid_start_s * fps))


def click_signature(
    vectors: NDArray[np.float32],
    notes: NDArray[np.float32],
    delta: float,
    line_offsets_s: NDArray[np.float64] | Callable[[], NDArray[np.float64]] | None = None,
) -> NDArray[np.float32] | None:
    """The click's per-band flux, or None when the grid carries no metronome.

    ``vectors`` are the flux vectors at the grid lines (see :func:`peak_frames`), ``notes``
    those of the onsets off the grid (the student's), ``line_offsets_s`` the seconds from
    each line to the onset heard on it (NaN where none is; None when unknown; or a function
    giving them, called only when needed). A metronome is an audible sound, the same at
    every quiet grid position, and unlike the student's notes (:func:`_click_of`)."""
    # (sorts and _median instead of np.quantile and np.median: the same values, and this
    # runs at every grid line of a live stream, where numpy's generic paths cost most)
    quiet = quiet_positions(vectors.sum(axis=1))

    def machine() -> bool:
        if line_offsets_s is None:
            return False
        offsets = line_offsets_s() if callable(line_offsets_s) else line_offsets_s
        return machine_timed(offsets[quiet])

    return _click_of(vectors, quiet, notes, delta, machine=machine)


def dying_click_signature(
    vectors: NDArray[np.float32],
    remains: NDArray[np.float64],
    notes: NDArray[np.float32],
    delta: float,
    line_offsets_s: NDArray[np.float64],
) -> NDArray[np.float32] | None:
    """The click's per-band flux learnt from the grid lines where what sounds dies away at
    once, or None.

    Where the student holds notes across the lines (an organ's chords), the quietest lines
    are not the click alone and disagree (cosine 0.61-0.68 on held-out organ takes), and
    :func:`click_signature` finds none; the click still dies away, notes played with it do
    not. The lines are those whose ``remains`` (what they leave 50 ms on,
    :func:`remain_shares`) are at most ``MIN_REMAIN_SHARE``, at least ``MIN_DYING_LINES``
    of them, and the onsets heard on them (``line_offsets_s`` as for
    :func:`click_signature`) must keep a machine's time (:func:`machine_timed`: a drum
    kit's hits die away as fast and its samples are as alike, but a drummer is 4-11 ms off
    where a metronome is under 1.1 ms, on held-out renders); then :func:`_click_of`'s
    tests."""
    dying = remains <= MIN_REMAIN_SHARE
    if int(dying.sum()) < MIN_DYING_LINES or not machine_timed(line_offsets_s[dying]):
        return None
    return _click_of(vectors, dying, notes, delta, machine=lambda: True)


def machine_timed(offsets_s: NDArray[np.float64]) -> bool:
    """Whether the onsets heard on some grid lines (seconds from each line, NaN where none
    was) keep a machine's time: at least ``MIN_DYING_LINES`` of them, their median absolute
    deviation from their median within ``MAX_SPREAD_S``."""
    heard = offsets_s[np.isfinite(offsets_s)]
    if heard.shape[0] < MIN_DYING_LINES:
        return False
    spread = _median(np.sort(np.abs(heard - _median(np.sort(heard)))))
    return float(spread) <= MAX_SPREAD_S


def _click_of(
    vectors: NDArray[np.float32],
    lines: NDArray[np.bool_],
    notes: NDArray[np.float32],
    delta: float,
    *,
    machine: Callable[[], bool],
) -> NDArray[np.float32] | None:
    """The median flux of the grid ``lines`` (a mask of ``vectors``, at least three) as the
    click, or None: when it is under half the peak-picking threshold ``delta``; when those
    lines differ from each other (median cosine to it under ``MIN_SIMILARITY``: soft notes,
    not one click); when the student's ``notes`` sound like it (five or more, median
    cosine at least ``NOTE_LIKE``), unless those lines keep a machine's time (``machine()``)
    and agree with each other ``MACHINE_MARGIN`` more closely than the notes do with them
    (a woodblock click under a marimba or a drum kit is like the notes, but each click is
    the same, to a hair and a millisecond, as no two notes are); or, with fewer notes off
    the grid, when the lines are not clearly quieter than the rest (a click alone, not the
    same note played softly)."""
    chosen = vectors[lines]
    if chosen.shape[0] < 3:
        return None
    signature: NDArray[np.float32] = _median(np.sort(chosen, axis=0)).astype(np.float32)
    if float(signature.sum()) < 0.5 * delta:
        return None
    alike = float(_median(np.sort(_cosine(chosen, signature))))
    if alike < MIN_SIMILARITY:
        return None
    if notes.shape[0] >= 5:
        like_notes = float(_median(np.sort(_cosine(notes, signature))))
        if like_notes >= NOTE_LIKE and not (
            like_notes <= alike - MACHINE_MARGIN and machine()
        ):
            return None
    else:
        totals = vectors.sum(axis=1)
        if float(_median(np.sort(totals[lines]))) > 0.6 * float(_median(np.sort(totals))):
            return None
    return signature


def lone_click_signature(
    vectors: NDArray[np.float32],
    offsets_s: NDArray[np.float64],
    remains: NDArray[np.float64],
    delta: float,
) -> NDArray[np.float32] | None:
    """The click's per-band flux when the grid lines carry a metronome and nothing else (the
    student silent), or None.

    :func:`click_signature` cannot tell the same click on every line from the student's
    note played alike on every line (its quiet lines are as loud as the rest), and left
    every click a perfectly timed note. A machine is told apart by its timing, as a blind
    metronome is (:func:`find_click_grid`): there are onsets on at least ``LONE_COVERAGE``
    of the lines (``vectors``, one per line), ``LONE_AGREEMENT`` of them within
    ``MAX_SPREAD_S`` of their median offset from their lines (``offsets_s``, seconds; a
    drummer who plays with the click, half the time after it, does not), the lines' flux
    all has the same shape (median cosine to their median at least ``LONE_SIMILARITY``),
    and nothing sounds on after it (the median of what the lines leave 50 ms on,
    ``remains`` (:func:`remain_shares`), at most ``MIN_REMAIN_SHARE``: a slow note begun
    after each click does not)."""
    n = vectors.shape[0]
    if n == 0 or offsets_s.shape[0] < LONE_COVERAGE * n or remains.shape[0] == 0:
        return None
    near = np.abs(offsets_s - _median(np.sort(offsets_s))) <= MAX_SPREAD_S
    if float(near.mean()) < LONE_AGREEMENT:
        return None  # as regular as a good player, not as a machine
    if float(_median(np.sort(remains))) > MIN_REMAIN_SHARE:
        return None  # something sounds on after the lines: the student
    signature: NDArray[np.float32] = _median(np.sort(vectors, axis=0)).astype(np.float32)
    if float(signature.sum()) < 0.5 * delta:
        return None
    if float(_median(np.sort(_cosine(vectors, signature)))) < LONE_SIMILARITY:
        return None
    return signature


def grid_offsets_s(
    onsets_s: NDArray[np.float64], period_s: float, click_s: float
) -> NDArray[np.float64]:
    """Signed seconds from each onset to the nearest line of the grid ``click_s + k *
    period_s``."""
    phase = (onsets_s - click_s) / period_s
    out: NDArray[np.float64] = (phase - np.round(phase)) * period_s
    return out


def _median(ordered: NDArray[np.floating]) -> NDArray[np.floating]:
    """``np.median(x, axis=0)`` of ``ordered = np.sort(x, axis=0)`` (non-empty)."""
    n = ordered.shape[0]
    mid: NDArray[np.floating] = (
        ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    )
    return mid


def _quantile(ordered: NDArray[np.floating], q: float) -> np.floating:
    """``np.quantile(x, q)`` (linear) of ``ordered = np.sort(x)`` (1-D, non-empty): numpy's
    interpolation formula, in the array's precision."""
    index = q * (ordered.shape[0] - 1)
    lo = math.floor(index)
    hi = min(lo + 1, ordered.shape[0] - 1)
    t = index - lo
    a, b = ordered[lo], ordered[hi]
    diff = b - a
    value: np.floating = b - diff * (1.0 - t) if t >= 0.5 else a + diff * t
    return value


def metronome_clicks(
    S: NDArray[np.float32],
    onsets_s: NDArray[np.float64],
    fps: float,
    *,
    lag_frames: int,
    max_bands: int,
    target_bpm: float,
    grid_start_s: float,
    delta: float,
    offset_s: float = 0.0,
    ref: NDArray[np.float32] | None = None,
) -> NDArray[np.bool_]:
    """Which of ``onsets_s`` are only a metronome click on the grid of ``target_bpm``.

    Parameters
    ----------
    S : ndarray, shape (n_frames, n_bands)
        Log spectrogram the onsets were detected on.
    onsets_s : ndarray
        Detected onset times in seconds.
    fps : float
        Frame rate in Hz.
    lag_frames, max_bands : int
        The onset-strength parameters used for detection.
    target_bpm, grid_start_s : float
        The metronome's tempo (BPM) and its first click (seconds): no click sounds on the
        grid's lines before it.
    delta : float
        The peak-picking threshold (onset-strength units).
    offset_s : float
        The detector's constant time offset (seconds) added to onset times.
    ref : ndarray, optional
        ``S`` max-filtered over ``max_bands`` bands, when the caller has it already.

    Returns
    -------
    ndarray of bool
        True for the onsets taken as metronome clicks (drop them to keep the notes).
    """
    n_frames = S.shape[0]
    none = np.zeros(onsets_s.shape[0], dtype=np.bool_)
    click_frames = grid_frames(n_frames, fps, 60.0 / target_bpm, grid_start_s)
    # no click sounds before the first: lines there would pass for the click alone, the
    # quietest of all, and the click's signature learnt from them matches no click heard
    click_frames = click_frames[click_frames >= first_click_frame(fps, grid_start_s) - 1]
    if onsets_s.size == 0:
        return none
    onset_frames = np.clip(np.round((onsets_s - offset_s) * fps).astype(np.int64), 0, n_frames - 1)
    # nor after the last sound: a metronome still ticking there would be heard, and the
    # silent lines of a recording that runs on after the playing and the metronome have
    # stopped would pass for the click alone, as lines before the first click would
    click_frames = click_frames[click_frames <= onset_frames.max() + CLICK_WINDOW_FRAMES]
    if click_frames.size < 8:
        return none
    S = np.ascontiguousarray(S, dtype=np.float32)
    if ref is None:
        ref = _max_filter_bands_kernel(S, max_bands) if max_bands > 0 else S
    ref = np.ascontiguousarray(ref, dtype=np.float32)
    # the per-band flux is read only near the onsets and the lines: its total everywhere,
    # its rows where they peak
    totals = flux_totals(S, ref, lag_frames)
    onset_apart, line_apart, nearest = nearest_between(onset_frames, click_frames)
    on_grid = onset_apart <= CLICK_WINDOW_FRAMES
    onset_peaks = peak_frames(totals, onset_frames, 1)
    grid_peaks = peak_frames(totals, click_frames, CLICK_WINDOW_FRAMES)
    vectors = band_flux_rows(S, ref, lag_frames, onset_peaks)
    grid_vectors = band_flux_rows(S, ref, lag_frames, grid_peaks)
    ahead = remain_frames(fps)
    line_remains = remain_shares(S, ref, grid_peaks, lag=lag_frames, ahead=ahead)
    period_s = 60.0 / target_bpm
    # the onset heard on each line (its offset from the line), NaN where none is
    line_offsets = np.where(
        line_apart <= CLICK_WINDOW_FRAMES,
        grid_offsets_s(onsets_s[nearest] - offset_s, period_s, grid_start_s),
        np.nan,
    )
    notes = vectors[~on_grid]
    signature = click_signature(grid_vectors, notes, delta, line_offsets)
    if signature is None:
        offsets = grid_offsets_s(onsets_s[on_grid] - offset_s, period_s, grid_start_s)
        signature = lone_click_signature(grid_vectors, offsets, line_remains, delta)
    if signature is None:
        signature = dying_click_signature(grid_vectors, line_remains, notes, delta, line_offsets)
    # a note played with the click leaves more behind than a click alone does, unless the
    # next onset comes before that is measured
    limit = remain_limit(line_remains)
    late = late_remain_frames(fps)
    gaps = np.append(np.diff(onset_peaks), np.inf)
    early = remain_shares(S, ref, onset_peaks, lag=lag_frames, ahead=ahead)
    later = remain_shares(S, ref, onset_peaks, lag=lag_frames, ahead=late)
    followed = gaps <= ahead
    if signature is None:
        # no sound of its own: a click shaped like the notes (a beep under plucked tones);
        # what is left 70 ms on is not read where the next onset peaks by two frames after
        # that (it is rising then)
        return timed_clicks(
            grid_offsets_s(onsets_s - offset_s, period_s, grid_start_s),
            on_grid=on_grid,
            dies=onset_remain(early, later, gaps, late + TIMED_RISE_FRAMES) <= limit,
            followed=followed,
        )
    remains = onset_remain(early, later, gaps, late)
    eligible = on_grid & ~followed & (remains <= limit)
    as_heard = refined_signature(
        signature,
        vectors[eligible],
        grid_offsets_s(onsets_s[eligible] - offset_s, period_s, grid_start_s),
    )
    is_click: NDArray[np.bool_] = on_grid & classify_clicks(vectors, as_heard)
    is_click &= followed | (remains <= limit)
    return is_click


def timed_click_offset(
    offsets_s: NDArray[np.float64],
    *,
    on_grid: NDArray[np.bool_],
    dies: NDArray[np.bool_],
    followed: NDArray[np.bool_],
) -> float | None:
    """The offset from their lines (seconds) of a metronome told by its timing and its
    short sound alone, or None: for when no flux signature tells it (a beep's flux is
    shaped like a plucked tone's).

    ``offsets_s`` are the onsets' seconds from their nearest grid line (those off the grid
    are not read), ``on_grid`` those on a line, ``dies`` those that leave no more than a
    click alone behind (:func:`remain_limit`), ``followed`` those with the next onset too
    soon to tell. The on-grid onsets heard alone that die away (``on_grid & dies &
    ~followed``) are a metronome's when at least ``MIN_TIMED_CLICKS`` of them, and
    ``TIMED_SHARE`` of them, lie in the densest 3 ms of their offsets
    (:func:`machine_cluster`; a drummer's are spread over 4-11 ms), and when the student's
    notes sound on: at least ``MIN_TIMED_CLICKS`` onsets off the grid, most of which do
    not die away (a sequencer's notes, all on the grid and as short, stay notes); the
    offset is the median of that cluster."""
    alone = on_grid & dies & ~followed
    off_grid = ~on_grid
    if int(alone.sum()) < MIN_TIMED_CLICKS or int(off_grid.sum()) < MIN_TIMED_CLICKS:
        return None
    if float(dies[off_grid].mean()) > 0.5:
        return None  # the notes die as fast: nothing but the timing to tell, not enough
    heard = offsets_s[alone]
    cluster = machine_cluster(heard)
    n = int(cluster.sum())
    if n < MIN_TIMED_CLICKS or n < TIMED_SHARE * heard.shape[0]:
        return None
    return float(np.median(heard[cluster]))


def timed_clicks(
    offsets_s: NDArray[np.float64],
    *,
    on_grid: NDArray[np.bool_],
    dies: NDArray[np.bool_],
    followed: NDArray[np.bool_],
) -> NDArray[np.bool_]:
    """The clicks of a metronome told by its timing (:func:`timed_click_offset`, the same
    arguments): the on-grid onsets within ``CLUSTER_HALF_WIDTH_S`` of its offset that die
    away or are followed too soon to tell (a note played with the click sounds on)."""
    centre = timed_click_offset(offsets_s, on_grid=on_grid, dies=dies, followed=followed)
    if centre is None:
        return np.zeros(offsets_s.shape[0], dtype=np.bool_)
    return is_timed_click(offsets_s, centre, dies=dies, followed=followed) & on_grid


def is_timed_click(
    offsets_s: NDArray[np.float64], centre_s: float, *, dies: ArrayLike, followed: ArrayLike
) -> NDArray[np.bool_]:
    """Which onsets (on grid lines, ``offsets_s`` from them) are the clicks of a metronome
    at ``centre_s`` from its lines (:func:`timed_click_offset`): within
    ``CLUSTER_HALF_WIDTH_S`` of it, and dying away or followed too soon to tell."""
    near = np.abs(np.asarray(offsets_s, dtype=np.float64) - centre_s) <= CLUSTER_HALF_WIDTH_S
    out: NDArray[np.bool_] = near & (np.asarray(dies) | np.asarray(followed))
    return out


def refined_signature(
    signature: NDArray[np.float32],
    candidates: NDArray[np.float32],
    offsets_s: NDArray[np.float64],
) -> NDArray[np.float32]:
    """The click as heard on the lines, learnt again from the ``candidates`` (flux vectors of
    onsets on grid lines that leave no more than a click alone does and no onset follows at
    once; ``offsets_s``, seconds from their lines) inside ``signature``'s bands: the median
    of those that keep the machine's time (:func:`machine_cluster`), when there are
    ``MIN_DYING_LINES`` of them, or, when fewer lie inside the bands, of all those in the
    machine's time if they are one sound repeated (:func:`_identical`: a woodblock's
    broadband click, when the first signature was a narrow sound heard on the quiet lines);
    else of those that look like ``signature`` (cosine at least ``REFINE_SIMILARITY``), when
    at least ``MIN_REFINED`` do; else ``signature``.

    ``signature`` comes from the few quietest lines (:func:`click_signature`), where a
    sustained note often sounds too; against it, clicks under the student's long notes
    fell below ``CLICK_SIMILARITY`` (a violin's rubato take: cosine 0.51-0.81) and stayed
    notes, perfectly timed ones; on some takes it is a faint, wrong sound the clicks do not
    match at all (guitar takes: cosine 0.45-0.57). The clicks heard on every line give the
    click's shape better, and their machine timing picks them out."""
    if candidates.shape[0] < MIN_REFINED:
        return signature
    footprint = _footprint(signature)
    inside = candidates[:, ~footprint].sum(axis=1) <= MAX_OUTSIDE_SHARE * candidates.sum(axis=1)
    cluster = machine_cluster(offsets_s)
    chosen = candidates[inside & cluster]
    if chosen.shape[0] < MIN_DYING_LINES and _identical(candidates[cluster]):
        chosen = candidates[cluster]  # the first signature was another sound
    if chosen.shape[0] < MIN_DYING_LINES:
        chosen = candidates[inside & (_cosine(candidates, signature) >= REFINE_SIMILARITY)]
        if chosen.shape[0] < MIN_REFINED:
            return signature
    out: NDArray[np.float32] = _median(np.sort(chosen, axis=0)).astype(np.float32)
    return out


def _identical(vectors: NDArray[np.float32]) -> bool:
    """Whether ``vectors`` (flux vectors, at least ``MIN_DYING_LINES``) are one sound
    repeated, as a machine's clicks are: median cosine to their median at least
    ``LONE_SIMILARITY``."""
    if vectors.shape[0] < MIN_DYING_LINES:
        return False
    median = _median(np.sort(vectors, axis=0)).astype(np.float32)
    return float(_median(np.sort(_cosine(vectors, median)))) >= LONE_SIMILARITY


def machine_cluster(offsets_s: NDArray[np.float64]) -> NDArray[np.bool_]:
    """The onsets (seconds from their grid lines) in the densest window of
    ``2 * CLUSTER_HALF_WIDTH_S``: where a metronome's clicks are, the student's notes
    scattered around them by several milliseconds."""
    order = np.argsort(offsets_s, kind="stable")
    ordered = offsets_s[order]
    ends = np.searchsorted(ordered, ordered + 2 * CLUSTER_HALF_WIDTH_S, side="right")
    first = int(np.argmax(ends - np.arange(ordered.shape[0]))) if ordered.shape[0] else 0
    out = np.zeros(offsets_s.shape[0], dtype=np.bool_)
    if ordered.shape[0]:
        out[order[first : ends[first]]] = True
    return out


def _footprint(signature: NDArray[np.float32]) -> NDArray[np.bool_]:
    """The click's own bands: those where the signature has ``FOOTPRINT_LEVEL`` of its peak
    flux, and their neighbours within ``FOOTPRINT_SPREAD`` bands."""
    own = signature >= FOOTPRINT_LEVEL * float(signature.max())
    near: NDArray[np.bool_] = np.convolve(own, np.ones(2 * FOOTPRINT_SPREAD + 1), mode="same") > 0
    return near


def classify_clicks(
    vectors: NDArray[np.float32], signature: NDArray[np.float32]
) -> NDArray[np.bool_]:
    """Which onset flux vectors (on grid lines) are a click alone.

    A click alone rises only in the click's own bands (more of them over silence than under
    a note) and has the click's shape; a note played with the click also rises outside them.
    """
    footprint = _footprint(signature)
    outside = vectors[:, ~footprint].sum(axis=1)
    total = vectors.sum(axis=1)
    mask: NDArray[np.bool_] = (outside <= MAX_OUTSIDE_SHARE * total) & (
        _cosine(vectors, signature) >= CLICK_SIMILARITY
    )
    return mask


def nearest_between(
    onset_frames: NDArray[np.int64], line_frames: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Each onset's distance to its nearest grid line, each line's to its nearest onset, and
    that onset's index (the first of equals): in frames, by binary search rather than over
    every pair (an hour's onsets against its lines filled gigabytes).

    ``line_frames`` is non-decreasing and not empty; ``onset_frames`` not empty, any order.
    """
    k = np.searchsorted(line_frames, onset_frames)
    below = line_frames[np.maximum(k - 1, 0)]
    above = line_frames[np.minimum(k, line_frames.size - 1)]
    onset_apart = np.minimum(np.abs(onset_frames - below), np.abs(onset_frames - above))
    order = np.argsort(onset_frames, kind="stable")
    ordered = onset_frames[order]
    # the onset values either side of each line, each at the first onset of its equals
    right = np.minimum(np.searchsorted(ordered, line_frames, side="left"), ordered.size - 1)
    right = np.searchsorted(ordered, ordered[right], side="left")
    left = np.searchsorted(ordered, ordered[np.maximum(right - 1, 0)], side="left")
    to_right = np.abs(ordered[right] - line_frames)
    to_left = np.abs(ordered[left] - line_frames)
    # the nearer; on a tie the onset that comes first in the caller's order
    pick_left = (to_left < to_right) | ((to_left == to_right) & (order[left] < order[right]))
    line_apart = np.where(pick_left, to_left, to_right)
    nearest = np.where(pick_left, order[left], order[right])
    return onset_apart, line_apart, nearest


@njit(cache=True, nogil=True)
def _intervals_kernel(t: NDArray[np.float64], lo_s: float, hi_s: float) -> NDArray[np.float64]:
    """Every interval ``t[j] - t[i]`` (``t`` non-decreasing, ``j > i``) from ``lo_s`` to
    ``hi_s`` seconds, in time linear in the pairs within ``hi_s`` of each other."""
    n = t.shape[0]
    count = 0
    for i in range(n):
        j = i + 1
        while j < n and t[j] - t[i] <= hi_s:
            if t[j] - t[i] >= lo_s:
                count += 1
            j += 1
    out = np.empty(count)
    c = 0
    for i in range(n):
        j = i + 1
        while j < n and t[j] - t[i] <= hi_s:
            if t[j] - t[i] >= lo_s:
                out[c] = t[j] - t[i]
                c += 1
            j += 1
    return out


@njit(cache=True, nogil=True)
def _phase_neighbours_kernel(
    phases: NDArray[np.float64], period: float, tol: float
) -> NDArray[np.int64]:
    """For each of ``phases`` (in ``[0, period)``, ``tol < period / 2``), how many of them,
    itself included, lie within ``tol`` of it around the circle: ``min(d, period - d) <=
    tol`` for ``d = |a - b|``, counted by binary search over the sorted phases instead of
    over every pair (the same comparisons decide, so the same counts)."""
    n = phases.shape[0]
    order = np.argsort(phases)
    sp = phases[order]
    out = np.zeros(n, dtype=np.int64)
    for a in range(n):
        p = sp[a]
        lo, hi = a, n - 1  # the last b >= a with sp[b] - p <= tol
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if sp[mid] - p <= tol:
                lo = mid
            else:
                hi = mid - 1
        top = lo
        lo, hi = 0, a  # the first b <= a with p - sp[b] <= tol
        while lo < hi:
            mid = (lo + hi) // 2
            if p - sp[mid] <= tol:
                hi = mid
            else:
                lo = mid + 1
        bottom = lo
        count = top - bottom + 1
        lo, hi = top + 1, n  # above: the first b with period - (sp[b] - p) <= tol (or n)
        while lo < hi:
            mid = (lo + hi) // 2
            if period - (sp[mid] - p) <= tol:
                hi = mid
            else:
                lo = mid + 1
        count += n - lo
        lo, hi = -1, bottom - 1  # below: the last b with period - (p - sp[b]) <= tol (or -1)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if period - (p - sp[mid]) <= tol:
                lo = mid
            else:
                hi = mid - 1
        count += lo + 1
        out[order[a]] = count
    return out


def _densest_phase(onsets_s: NDArray[np.float64], period: float, tol_s: float) -> tuple[int, int]:
    """The onset with the most onsets within ``tol_s`` of its phase modulo ``period``
    (the first of equals), and how many."""
    count = _phase_neighbours_kernel(np.mod(onsets_s, period), period, tol_s)
    i = int(np.argmax(count))
    return i, int(count[i])


def _grid_fit(
    onsets_s: NDArray[np.float64], period: float, phase: float, tol_s: float
) -> tuple[int, float]:
    """Onsets within ``tol_s`` of the grid, and the share of the grid's lines they cover
    between the first and the last of them."""
    res = np.mod(onsets_s - phase + period / 2, period) - period / 2
    on = np.abs(res) <= tol_s
    n = int(on.sum())
    if n < 2:
        return n, 0.0
    spread = float(np.median(np.abs(res[on] - np.median(res[on]))))
    if spread > MAX_SPREAD_S:
        return n, 0.0  # as regular as a good player, not as a machine
    span = (onsets_s[on].max() - onsets_s[on].min()) / period + 1
    return n, n / span


def find_click_grid(
    onsets_s: NDArray[np.float64],
    *,
    tol_s: float = 0.004,
    min_clicks: int = 12,
    min_coverage: float = 0.85,
) -> tuple[float, float] | None:
    """Find a metronome among onsets without being told its tempo.

    A metronome is exactly periodic and never rests: its clicks sit within the detector's
    precision (``tol_s``) of one grid and fill nearly every line of it (``min_coverage``),
    while players jitter by several milliseconds, drift, and rest. When a student playing
    with it hides many clicks, ``min_clicks`` of them within a millisecond of one
    grid on half its lines still make it one (:func:`_machine_grid`). Returns the period
    and a click time in seconds, or None.
    """
    if onsets_s.size < min_clicks:
        return None
    diffs = _intervals_kernel(np.sort(onsets_s), 0.2, 2.1)
    if diffs.size == 0:
        return None
    edges = np.arange(0.2, 2.1 + 0.002, 0.002)
    hist = np.convolve(np.histogram(diffs, edges)[0], [1, 1, 1], mode="same")
    best: tuple[int, float, float] | None = None
    for k in np.argsort(hist)[::-1][:3]:
        near = diffs[np.abs(diffs - (edges[k] + 0.001)) <= tol_s]
        if near.size == 0:
            continue
        period = float(np.median(near))
        i, count = _densest_phase(onsets_s, period, tol_s)
        if best is None or count > best[0]:
            best = (count, period, float(onsets_s[i]))
    if best is None:
        return None
    _, period, phase = best
    n, coverage = _grid_fit(onsets_s, period, phase, tol_s)
    if n < min_clicks or coverage < min_coverage:
        found = _machine_grid(onsets_s, diffs, tol_s, min_clicks)
        if found is None:
            return None
        period, phase = found
    for k in (4, 3, 2):  # the clicks may be a subdivision of the period found
        if period / k >= 0.2:
            nk, ck = _grid_fit(onsets_s, period / k, phase, tol_s)
            if nk >= min_clicks and ck >= SUBGRID_COVERAGE:
                return period / k, phase
    return period, phase


def blind_clicks(
    S: NDArray[np.float32],
    onsets_s: NDArray[np.float64],
    fps: float,
    *,
    lag_frames: int,
    max_bands: int,
    delta: float,
    offset_s: float = 0.0,
    ref: NDArray[np.float32] | None = None,
) -> NDArray[np.bool_]:
    """Which of ``onsets_s`` are clicks of a metronome found without knowing the target
    (:func:`find_click_grid`); the other parameters as for :func:`metronome_clicks`."""
    grid = find_click_grid(onsets_s)
    if grid is None:
        return np.zeros(onsets_s.shape[0], dtype=np.bool_)
    period, phase = grid
    first = phase - np.floor(phase / period) * period
    return metronome_clicks(
        S,
        onsets_s,
        fps,
        lag_frames=lag_frames,
        max_bands=max_bands,
        target_bpm=60.0 / period,
        grid_start_s=first,
        delta=delta,
        offset_s=offset_s,
        ref=ref,
    )


def on_target_grid(clicks_s: NDArray[np.float64], target_bpm: float, grid_start_s: float) -> bool:
    """Whether the clicks of a metronome found blind (:func:`blind_clicks`, seconds) are the
    target's: at least ``MIN_BLIND_ON_TARGET`` of them, nearly all (``LONE_AGREEMENT``)
    within ``ON_TARGET_S`` of the lines of the grid of ``target_bpm`` from ``grid_start_s``."""
    if clicks_s.shape[0] < MIN_BLIND_ON_TARGET:
        return False
    offsets = grid_offsets_s(clicks_s, 60.0 / target_bpm, grid_start_s)
    return float((np.abs(offsets) <= ON_TARGET_S).mean()) >= LONE_AGREEMENT


def _machine_grid(
    onsets_s: NDArray[np.float64], diffs: NDArray[np.float64], tol_s: float, min_clicks: int
) -> tuple[float, float] | None:
    """A metronome whose clicks are heard on only part of its lines (the student playing
    with it hides the rest), found by its precision alone, or None: the period and a click
    time in seconds.

    The intervals between clicks are exact multiples of the period, so they make the
    sharpest peaks of the histogram of intervals (1 ms bins, less the level 5-15 ms
    around: a player's intervals spread over tens of ms). For each of the
    ``MACHINE_CANDIDATES`` sharpest, the grid through the most onsets is fitted to the
    onsets on it (least squares, twice); it is the metronome's when at least
    ``min_clicks`` onsets lie on it within ``tol_s``, keeping a machine's time (median
    absolute deviation <= ``MACHINE_GRID_SPREAD_S``) on at least ``MACHINE_GRID_COVERAGE``
    of its lines between the first and the last (held-out takes: 0.6-0.8 of the clicks
    heard apart from the notes, 0.5-0.8 ms). A long take thus needs half its lines; a
    slow one of 12-24 lines, ``min_clicks`` in all."""
    edges = np.arange(0.2, 2.1 + 0.001, 0.001)
    counts = np.histogram(diffs, edges)[0].astype(np.float64)
    peak = np.convolve(counts, [1.0, 1.0, 1.0], mode="same")
    around = np.r_[np.ones(10), np.zeros(11), np.ones(10)] * (3.0 / 20.0)
    sharpness = peak - np.convolve(counts, around, mode="same")
    best: tuple[int, float, float] | None = None
    for k in np.argsort(sharpness)[::-1][:MACHINE_CANDIDATES]:
        near = diffs[np.abs(diffs - (edges[k] + 0.0005)) <= 0.0015]
        if 2 * near.size < min_clicks:  # consecutive clicks heard: at least half of them
            continue
        period = float(np.median(near))
        phase = float(onsets_s[_densest_phase(onsets_s, period, tol_s)[0]])
        for _ in range(2):  # the period to a fraction of a millisecond over the whole take
            index = np.round((onsets_s - phase) / period)
            on = np.abs(onsets_s - phase - index * period) <= tol_s
            if on.sum() < 3:
                break
            design = np.stack([np.ones(int(on.sum())), index[on]], axis=1)
            phase, period = (float(v) for v in np.linalg.lstsq(design, onsets_s[on], rcond=None)[0])
        index = np.round((onsets_s - phase) / period)
        residual = onsets_s - phase - index * period
        on = np.abs(residual) <= tol_s
        n = int(on.sum())
        if n < min_clicks:
            continue
        spread = float(np.median(np.abs(residual[on] - np.median(residual[on]))))
        span = (onsets_s[on].max() - onsets_s[on].min()) / period + 1
        if (
            spread <= MACHINE_GRID_SPREAD_S
            and n / span >= MACHINE_GRID_COVERAGE
            and (best is None or n > best[0])
        ):
            best = (n, period, phase)
    return None if best is None else (best[1], best[2])
