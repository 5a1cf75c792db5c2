"""Metrical level: which periodicity is the beat.

The tatum (fastest regular pulse) is tracked first; the beat is the grouping of tatums
(1, 2, 3 or 4 per beat) that best combines a log-normal tempo prior with the accent
evidence of the grouping: a rank-based t statistic of the onset strength on the chosen
tatums against the others, measured along the tracked tatums so that tempo changes do not
blur it, and robust to rests (silent tatums) and single loud notes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit
from numpy.typing import NDArray

if TYPE_CHECKING:
    from audio_engine.dsp.accents import TatumNotes
    from audio_engine.params import TempoParams


@njit(cache=True, nogil=True)
def _strength_at_kernel(
    odf: NDArray[np.float64], frames: NDArray[np.int64], half: int
) -> NDArray[np.float64]:
    """Maximum of ``odf`` within ``±half`` frames of each frame index."""
    n = odf.shape[0]
    out = np.zeros(frames.shape[0])
    for k in range(frames.shape[0]):
        lo = max(0, frames[k] - half)
        hi = min(n, frames[k] + half + 1)
        m = 0.0
        for j in range(lo, hi):
            if odf[j] > m:
                m = odf[j]
        out[k] = m
    return out


def pulse_index(frames: NDArray[np.int64], period: NDArray[np.float64]) -> NDArray[np.int64]:
    """Grid index of each tracked pulse: a gap of two local periods counts as two pulses."""
    if frames.size == 0:
        return np.zeros(0, dtype=np.int64)
    steps = np.maximum(1, np.round(np.diff(frames) / period[frames[1:]])).astype(np.int64)
    return np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(steps)])


@njit(cache=True, nogil=True)
def _ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks 1..n, ties sharing their average rank."""
    n = x.shape[0]
    order = np.argsort(x)
    out = np.empty(n)
    i = 0
    while i < n:
        j = i
        while j + 1 < n and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j + 2) / 2.0  # the mean of ranks i + 1 .. j + 1
        i = j + 1
    return out


@njit(cache=True, nogil=True)
def _welch_phases_kernel(
    x: NDArray[np.float64],
    index: NDArray[np.int64],
    group: int,
    divide: int,
    min_se: float,
    missing: float,
) -> NDArray[np.float64]:
    """For each phase ``p`` of ``group``: the Welch t statistic of the values ``x`` with
    ``(index // divide) % group == p`` against the others, its standard error at least
    ``min_se`` (0 when both sides are constant and ``min_se`` is 0); ``missing`` without
    three values a side. Two passes (means, then squared deviations), so it does not lose
    precision."""
    n = x.shape[0]
    out = np.full(group, missing)
    for phase in range(group):
        n_on = 0
        s_on = 0.0
        s_off = 0.0
        for k in range(n):
            if (index[k] // divide) % group == phase:
                n_on += 1
                s_on += x[k]
            else:
                s_off += x[k]
        n_off = n - n_on
        if n_on < 3 or n_off < 3:
            continue
        m_on = s_on / n_on
        m_off = s_off / n_off
        v_on = 0.0
        v_off = 0.0
        for k in range(n):
            if (index[k] // divide) % group == phase:
                v_on += (x[k] - m_on) ** 2
            else:
                v_off += (x[k] - m_off) ** 2
        se = max(np.sqrt(v_on / (n_on - 1) / n_on + v_off / (n_off - 1) / n_off), min_se)
        out[phase] = (m_on - m_off) / se if se > 0 else 0.0
    return out


def phase_evidence(
    strength: NDArray[np.float64], index: NDArray[np.int64], group: int,
    *, ranks: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Accent evidence for each phase of grouping pulses by ``group``.

    Parameters
    ----------
    strength : ndarray, shape (n_pulses,)
        Onset strength at each pulse.
    index : ndarray of int64, shape (n_pulses,)
        Grid index of each pulse (:func:`pulse_index`).
    group : int
        Pulses per group (>= 1).
    ranks : ndarray, shape (n_pulses,), optional
        The strengths' ranks, when the caller has them already.

    Returns
    -------
    ndarray of float64, shape (group,)
        Element ``p`` is the Welch t statistic of the strength ranks of the pulses with
        ``index % group == p`` against the other pulses; ``-inf`` where either side has
        fewer than three pulses (always for group 1).
    """
    r = _ranks(strength) if ranks is None else ranks
    return _welch_phases_kernel(
        np.ascontiguousarray(r, dtype=np.float64),
        np.ascontiguousarray(index, dtype=np.int64),
        group,
        1,
        0.0,
        -np.inf,
    )


def grouping_evidence(
    strength: NDArray[np.float64], index: NDArray[np.int64], group: int,
    *, ranks: NDArray[np.float64] | None = None,
) -> tuple[float, int]:
    """Accent evidence for grouping pulses by ``group``: the best phase's Welch t statistic of
    strength ranks on the phase against the other pulses, and that phase (0 for group 1).
    ``ranks`` are the strengths' ranks when the caller has them already."""
    if group == 1:
        return 0.0, 0
    t = phase_evidence(strength, index, group, ranks=ranks)
    best_phase = int(np.argmax(t))
    best = float(t[best_phase])
    return (best, best_phase) if np.isfinite(best) else (0.0, 0)


@njit(cache=True, nogil=True)
def _phase_path_kernel(
    score: NDArray[np.float64],
    index: NDArray[np.int64],
    group: int,
    switch_cost: float,
    home: int,
) -> NDArray[np.int64]:
    """The grouping phase in effect at each pulse (Viterbi): the path that maximises the
    ``score`` of the pulses it makes beats (``index % group == phase``) minus
    ``switch_cost`` per change of phase, a path that does not start or end in the ``home``
    phase paying a change there too (so a phase held only at an end needs the evidence of
    one in the middle). Ties keep the phase, and at the ends the home phase."""
    n = score.shape[0]
    cum = np.zeros((n, group))
    back = np.zeros((n, group), dtype=np.int64)
    for p in range(group):
        own = score[0] if index[0] % group == p else 0.0
        cum[0, p] = own - (switch_cost if p != home else 0.0)
    for k in range(1, n):
        for p in range(group):
            best = cum[k - 1, p]
            arg = p
            for q in range(group):
                if q != p and cum[k - 1, q] - switch_cost > best:
                    best = cum[k - 1, q] - switch_cost
                    arg = q
            cum[k, p] = best + (score[k] if index[k] % group == p else 0.0)
            back[k, p] = arg
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out
    p = home
    for q in range(group):
        end_q = cum[n - 1, q] - (switch_cost if q != home else 0.0)
        if end_q > cum[n - 1, p] - (switch_cost if p != home else 0.0):
            p = q
    for k in range(n - 1, -1, -1):
        out[k] = p
        p = back[k, p]
    return out


def backbeat_phase(
    notes: TatumNotes, index: NDArray[np.int64], group: int, tempo: TempoParams
) -> int | None:
    """The phase of grouping tatums by ``group`` whose beats alternate between unlike sounds
    (a drum kit's kick and snare: :meth:`TatumNotes.alternation` at least
    ``tempo.backbeat_alternation``) by ``tempo.backbeat_margin`` more than any other phase's
    beats; None when no phase does (or ``backbeat_alternation`` is None)."""
    if tempo.backbeat_alternation is None or group < 2:
        return None
    alt = notes.alternation(index, group)
    if not np.all(np.isfinite(alt)):
        return None
    order = np.argsort(alt)
    top = float(alt[order[-1]])
    if top >= tempo.backbeat_alternation and top - float(alt[order[-2]]) > tempo.backbeat_margin:
        return int(order[-1])
    return None


def kick_snare_tatums(notes: TatumNotes, index: NDArray[np.int64], tempo: TempoParams) -> bool:
    """Whether the tatums themselves alternate between two unlike sounds, strictly: each
    unlike the next (:meth:`TatumNotes.alternation` at least ``tempo.backbeat_alternation``)
    and like the one after (at lag 2 at most ``tempo.backbeat_repeat``), as kick and snare
    on the beats of a kit with nothing between them. (A kit with hi-hats between its beats
    alternates too, but its tatums two apart, kick and snare, differ.)"""
    if tempo.backbeat_alternation is None:
        return False
    one = float(notes.alternation(index, 1)[0])
    two = float(notes.alternation(index, 1, lag=2)[0])
    return one >= tempo.backbeat_alternation and two <= tempo.backbeat_repeat


def group_tatums(
    odf: NDArray[np.float64],
    tatum_frames: NDArray[np.int64],
    tatum_period: NDArray[np.float64],
    tatum_bpm: float,
    tempo: TempoParams,
    *,
    notes: TatumNotes | None,
    phase_switches: bool,
) -> tuple[NDArray[np.int64], int]:
    """Group tracked tatums into beats, with the prior, weights and thresholds of ``tempo``.

    The accent evidence is the onset strength's (weighted by ``tempo.accent_weight``), or,
    given the ``notes`` on the tatums and when the two phases of a grouping in pairs sound
    alike (:meth:`TatumNotes.timbre_similarity` at least ``tempo.same_timbre``: one
    instrument, not a drum kit's kick and snare), the notes' level contrast
    (:meth:`TatumNotes.evidence`; what it exceeds ``tempo.level_threshold`` by, weighted by
    ``tempo.level_weight``), which shows a played accent on sustained and melodic
    instruments where the flux does not.

    Where the notes do not place the beats, a drum kit's backbeat does: tatums on which
    kick and snare take turns (:func:`kick_snare_tatums`) are the beats rather than pairs
    of them (the prior halves a fast rock beat), and where one phase's alternate beats are
    a kick and a snare (:func:`backbeat_phase`), that phase is the beats, in one phase for
    the whole sequence: a syncopated kit's louder off-beats would otherwise take them.

    The group and its phase are chosen on the whole sequence. With ``phase_switches`` (and
    ``tempo.phase_switch_cost`` set), the phase may then change along the way where the
    accents say so for long enough (:func:`_phase_path_kernel` on the strength ranks,
    centred and divided by their count):
    a tracker that inserts or drops one tatum shifts every later tatum's grid index by one,
    and a single phase would put the beats after it on the off-beats.

    Returns
    -------
    beat_frames : ndarray of int64
        The tatums that are beats.
    group : int
        Tatums per beat (1-4), maximising prior log-likelihood + weighted accent evidence.
    """
    t = tempo
    phase_switch_cost = t.phase_switch_cost if phase_switches else None
    strength = _strength_at_kernel(odf, tatum_frames, 2)
    index = pulse_index(tatum_frames, tatum_period)
    ranks = _ranks(strength)
    by_level = notes is not None and notes.timbre_similarity(index) >= t.same_timbre
    best_g, best_phase, best_score, best_heard = 1, 0, -np.inf, False
    for g in (1, 2, 3, 4):
        bpm = tatum_bpm / g
        if bpm < t.min_bpm:
            break
        # the accents that place the beats: the notes' levels where they say something
        evidence, phase = grouping_evidence(strength, index, g, ranks=ranks)
        weighted, heard = t.accent_weight * evidence, False
        if by_level:
            assert notes is not None
            level, level_phase = notes.evidence(index, g)
            heard = level > t.level_threshold
            weighted = t.level_weight * max(0.0, level - t.level_threshold)
            phase = level_phase if heard else phase
        score = -0.5 * (np.log2(bpm / t.prior_bpm) / t.prior_octaves) ** 2 + weighted
        if score > best_score:
            best_g, best_phase, best_score, best_heard = g, phase, score, heard
    if best_g == 2 and not best_heard and notes is not None and kick_snare_tatums(notes, index, t):
        return tatum_frames, 1  # kick and snare take turns on the tatums: they are the beats
    if notes is not None and best_g > 1 and not best_heard:
        backbeat = backbeat_phase(notes, index, best_g, t)
        if backbeat is not None:
            return tatum_frames[index % best_g == backbeat], best_g
    if phase_switch_cost is None or best_g == 1 or ranks.size == 0:
        return tatum_frames[index % best_g == best_phase], best_g
    if best_heard:
        assert notes is not None
        score_k = notes.scores()
    else:
        score_k = (ranks - ranks.mean()) / ranks.size
    phases = _phase_path_kernel(score_k, index, best_g, phase_switch_cost, best_phase)
    return tatum_frames[index % best_g == phases], best_g
