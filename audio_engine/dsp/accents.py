"""What the notes on the tracked tatums sound like: how loud, and with what timbre.

A player accents the beat by playing its note louder. The onset strength (spectral flux)
shows that poorly on sustained and melodic instruments, whose flux depends on the previous
note's decay and the pitch step as much as on the loudness; the note's own level does not.
But a level accent means a grouping only when the accented and the other notes are the same
sound: a drum kit alternates kick and snare on the beats, two sounds of different loudness,
without grouping them. So the level evidence is used only when the two phases of a grouping
in pairs sound alike (the cosine of their mean band-power profiles,
:meth:`TatumNotes.timbre_similarity`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from numba import njit
from numpy.typing import NDArray

from audio_engine.dsp.meter import _welch_phases_kernel
from audio_engine.dsp.spectrogram import _hann

NEAR_PERIOD = 0.4
"""An onset belongs to a tatum within this share of the local tatum period of it."""
RMS_S, STEP_S, LEAD_S = 0.010, 0.0025, 0.005
"""A note's level: the loudest mean square over RMS_S, every STEP_S, from LEAD_S before it."""
MIN_SE_DB = 0.3
"""Floor of the level contrast's standard error (dB): a t statistic needs a heard accent."""
PROFILE_S, PROFILE_FMIN_HZ, N_PROFILE_BANDS = 0.046, 40.0, 24
"""A note's timbre: the power of its first PROFILE_S in third octaves from PROFILE_FMIN_HZ."""
PROFILE_BLOCK = 2048
"""Notes whose profiles are computed together (segments and spectra ~40 MB at 22 kHz)."""


@njit(cache=True, nogil=True)
def _note_levels_kernel(
    y: NDArray[np.float32],
    y0: int,
    hop: int,
    onset_frames: NDArray[np.int64],
    window: int,
    rms: int,
    step: int,
    lead: int,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Level (dB of the loudest ``rms``-sample mean square, every ``step`` samples from
    ``lead`` samples before its start to ``window`` after) and first sample (in ``y``'s
    indexing) of each note; NaN and -1 for a note whose start ``y`` does not hold. ``y``
    holds the signal's samples ``y0 ...``; frame ``f`` is centred on sample ``f * hop``.
    Each note's mean squares come from a running sum over its own samples."""
    n = onset_frames.shape[0]
    level = np.full(n, np.nan)
    first = np.full(n, -1, dtype=np.int64)
    n_samples = y.shape[0]
    for k in range(n):
        at = onset_frames[k] * hop - y0
        a = max(0, at - lead)
        b = min(n_samples - rms, at + window)
        if at < 0 or at >= n_samples or b < a:
            continue
        peak = 0.0
        acc = 0.0
        for i in range(a, a + rms):
            acc += np.float64(y[i]) * y[i]
        i = a
        while True:
            if acc > peak:
                peak = acc
            if i + step > b:
                break
            for j in range(i, i + step):  # slide the window by ``step``
                acc += np.float64(y[j + rms]) * y[j + rms] - np.float64(y[j]) * y[j]
            i += step
        level[k] = 10.0 * np.log10(max(peak, 0.0) / rms + 1e-20)
        first[k] = at
    return level, first


@njit(cache=True, nogil=True)
def _assign_kernel(
    onset_frames: NDArray[np.int64], tatum_frames: NDArray[np.int64], period: NDArray[np.float64]
) -> NDArray[np.int64]:
    """Index of the onset nearest each tatum within ``NEAR_PERIOD`` of the local period at
    the tatum (-1 for none); both frame lists sorted."""
    n = tatum_frames.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    n_on = onset_frames.shape[0]
    j = 0
    for k in range(n):
        f = tatum_frames[k]
        while j + 1 < n_on and onset_frames[j + 1] <= f:
            j += 1
        best_d = NEAR_PERIOD * period[f]
        for q in range(j, min(j + 2, n_on)):
            d = abs(onset_frames[q] - f)
            if d <= best_d:
                out[k] = q
                best_d = d
    return out


@njit(cache=True, nogil=True)
def _alternation_kernel(
    profile: NDArray[np.float64], index: NDArray[np.int64], group: int, lag: int
) -> NDArray[np.float64]:
    """:meth:`TatumNotes.alternation`: per phase, 1 - the cosine of the mean profiles (rows
    of ``profile``, NaN rows skipped) of the beats ``lag`` apart (beat ``index // group``
    modulo ``2 * lag`` = ``r`` against ``r + lag``), the largest over ``r < lag``."""
    n, bands = profile.shape
    out = np.full(group, np.nan)
    for phase in range(group):
        for r in range(lag):
            a = np.zeros(bands)
            b = np.zeros(bands)
            n_a = 0
            n_b = 0
            for k in range(n):
                if index[k] % group != phase or np.isnan(profile[k, 0]):
                    continue
                m = (index[k] // group) % (2 * lag)
                if m == r:
                    a += profile[k]
                    n_a += 1
                elif m == r + lag:
                    b += profile[k]
                    n_b += 1
            if n_a < 3 or n_b < 3:
                continue
            norm = np.sqrt(np.sum(a * a) * np.sum(b * b))
            if norm > 0:
                value = 1.0 - np.sum(a * b) / norm
                if np.isnan(out[phase]) or value > out[phase]:
                    out[phase] = value
    return out


@njit(cache=True, nogil=True)
def _segments_kernel(
    y: NDArray[np.float32], first: NDArray[np.int64], window: NDArray[np.float32]
) -> NDArray[np.float64]:
    """``y[first[k] : first[k] + len(window)] * window`` for each ``k`` (zeros past the end)."""
    n = window.shape[0]
    out = np.zeros((first.shape[0], n))
    for k in range(first.shape[0]):
        stop = min(n, y.shape[0] - first[k])
        for i in range(stop):
            out[k, i] = np.float64(y[first[k] + i]) * window[i]
    return out


@dataclass(frozen=True, slots=True)
class _Sizes:
    """What :func:`measure_notes` reads of a note, in samples at its rate."""

    window: int  # the level's reach past the note's start
    rms: int
    step: int
    lead: int
    n_fft: int  # the profile's window

    @classmethod
    def at(cls, sr: float, window_s: float) -> _Sizes:
        return cls(
            window=max(1, round(window_s * sr)),
            rms=max(1, round(RMS_S * sr)),
            step=max(1, round(STEP_S * sr)),
            lead=round(LEAD_S * sr),
            n_fft=max(16, round(PROFILE_S * sr)),
        )


def _profiles(
    y: NDArray[np.float32], first: NDArray[np.int64], sr: float, n_fft: int
) -> NDArray[np.float64]:
    """Normalised third-octave power (``PROFILE_FMIN_HZ`` up) of the ``n_fft`` samples from
    each ``first`` sample (a Hann window; NaN rows where ``first`` is -1)."""
    out = np.full((first.size, N_PROFILE_BANDS), np.nan)
    rows = np.flatnonzero(first >= 0)
    bands = _band_matrix(n_fft, float(sr))
    window = _hann(n_fft)
    # PROFILE_BLOCK notes at a time: an hour's notes at once held ~0.8 GB of segments and
    # spectra. A row's numbers depend on the rows computed with it in their last bits only
    # (the FFT's and the matrix product's batching), and a recording of a few minutes is
    # one block, as before
    for b0 in range(0, rows.size, PROFILE_BLOCK):
        block = rows[b0 : b0 + PROFILE_BLOCK]
        spectrum = scipy.fft.rfft(_segments_kernel(y, first[block], window), axis=1)
        sums = (spectrum.real**2 + spectrum.imag**2) @ bands
        total = sums.sum(axis=1, keepdims=True)
        out[block] = np.divide(sums, total, out=np.zeros_like(sums), where=total > 0)
    return out


@njit(cache=True, nogil=True)
def _local_contrast_kernel(level: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each level minus the mean of the nearest levels before and after it (NaN at the ends
    and where the level is NaN)."""
    n = level.shape[0]
    out = np.full(n, np.nan)
    prev = -1
    for k in range(n):
        if np.isnan(level[k]):
            continue
        if prev >= 0:
            nxt = k + 1
            while nxt < n and np.isnan(level[nxt]):
                nxt += 1
            if nxt < n:
                out[k] = level[k] - 0.5 * (level[prev] + level[nxt])
        prev = k
    return out


@lru_cache(maxsize=8)
def _band_matrix(n_fft: int, sr: float) -> NDArray[np.float64]:
    """0/1 matrix summing an ``n_fft``-point real spectrum's bins into the profile's third
    octaves."""
    edges = PROFILE_FMIN_HZ * 2.0 ** (np.arange(N_PROFILE_BANDS + 1) / 3.0)
    band = np.searchsorted(edges, np.fft.rfftfreq(n_fft, 1.0 / sr), side="right") - 1
    out = np.zeros((band.size, N_PROFILE_BANDS))
    inside = (band >= 0) & (band < N_PROFILE_BANDS)
    out[np.flatnonzero(inside), band[inside]] = 1.0
    return out


@dataclass(frozen=True, slots=True)
class TatumNotes:
    """The notes heard on the tracked tatums (see :func:`tatum_notes`).

    Attributes
    ----------
    contrast_db : ndarray, shape (n_tatums,)
        Each note's level in dB less the mean of its neighbours' (NaN on a tatum without a
        note, and at the ends).
    profile : ndarray, shape (n_tatums, n_bands)
        Each note's band-power profile, summing to 1 (NaN rows without a note).
    """

    contrast_db: NDArray[np.float64]
    profile: NDArray[np.float64]

    def _known(self) -> NDArray[np.bool_]:
        return ~np.isnan(self.contrast_db)

    def evidence(self, index: NDArray[np.int64], group: int) -> tuple[float, int]:
        """Level-accent evidence for grouping tatums by ``group`` and its phase: the best
        phase's Welch t of the level contrast (its standard error at least ``MIN_SE_DB``:
        notes of one loudness differ by a hair, and that is no accent). A grouping by four
        counts the evidence for pairs plus that for pairs of the pairs' accented tatums (an
        accent on every other beat), so it needs both."""
        known = self._known()
        x, idx = self.contrast_db[known], index[known]
        if group == 1 or x.size == 0:
            return 0.0, 0
        t = _welch_phases_kernel(x, idx, 2 if group == 4 else group, 1, MIN_SE_DB, 0.0)
        best = int(np.argmax(t))
        if group != 4:
            return float(t[best]), best
        on = idx % 2 == best
        t_pairs = _welch_phases_kernel(x[on], idx[on], 2, 2, MIN_SE_DB, 0.0)
        q = int(np.argmax(t_pairs))
        return float(t[best] + t_pairs[q]), best + 2 * q

    def timbre_similarity(self, index: NDArray[np.int64]) -> float:
        """Cosine of the mean band-power profiles of the accented phase of pairs and the
        other phase (near 1 for one instrument, low for kick against snare); 0 when a phase
        has no note."""
        known = self._known()
        _, phase = self.evidence(index, 2)
        on = known & (index % 2 == phase)
        off = known & (index % 2 != phase)
        if not on.any() or not off.any():
            return 0.0
        a = self.profile[on].mean(axis=0)
        b = self.profile[off].mean(axis=0)
        norm = float(np.linalg.norm(a) * np.linalg.norm(b))
        return float(a @ b / norm) if norm > 0 else 0.0

    def alternation(
        self, index: NDArray[np.int64], group: int, *, lag: int = 1
    ) -> NDArray[np.float64]:
        """For each phase ``p`` of grouping tatums by ``group``: how unlike each other the
        sounds of the beats ``lag`` apart are (1 - the cosine of the mean band profiles of
        the beats ``index // group`` even and odd for ``lag`` 1; for ``lag`` 2, of beats
        0 and 2, and of 1 and 3, modulo 4, the larger). Kick and snare alternating on the
        beats: high at lag 1, low at lag 2. NaN without three notes on either side."""
        return _alternation_kernel(self.profile, np.ascontiguousarray(index, dtype=np.int64),
                                   group, lag)

    def scores(self) -> NDArray[np.float64]:
        """The level contrast as a path score per tatum (centred ranks divided by their
        count, 0 without a note), for :func:`audio_engine.dsp.meter.group_tatums`'s
        phase path."""
        known = self._known()
        out = np.zeros(self.contrast_db.size)
        x = self.contrast_db[known]
        if x.size:
            ranks = np.argsort(np.argsort(x)).astype(np.float64) + 1.0
            out[known] = (ranks - ranks.mean()) / x.size
        return out


def measure_notes(
    y: NDArray[np.float32],
    sr: float,
    hop: int,
    onset_frames: NDArray[np.int64],
    *,
    window_s: float,
    y0: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Level and timbre of each note.

    Parameters
    ----------
    y : ndarray, shape (n,)
        The mono signal at ``sr`` Hz from its sample ``y0``; frame ``f`` is centred on
        sample ``f * hop``.
    sr : float
        Sample rate of ``y`` in Hz.
    hop : int
        Frame hop in samples.
    onset_frames : ndarray of int64
        Start frame of each note.
    window_s : float
        A note's level is its loudest 10 ms from 5 ms before its start to ``window_s``
        after (as far as ``y`` goes); its profile is the third-octave power of its first
        ``PROFILE_S``.
    y0 : int
        Index of ``y``'s first sample in the whole signal.

    Returns
    -------
    level_db : ndarray, shape (n_notes,)
        NaN for a note that starts outside ``y``.
    profile : ndarray, shape (n_notes, N_PROFILE_BANDS)
        Each row sums to 1 (NaN rows as ``level_db``).
    """
    x = np.ascontiguousarray(y, dtype=np.float32)
    size = _Sizes.at(sr, window_s)
    level, first = _note_levels_kernel(
        x,
        int(y0),
        int(hop),
        np.ascontiguousarray(onset_frames, dtype=np.int64),
        size.window,
        size.rms,
        size.step,
        size.lead,
    )
    return level, _profiles(x, first, sr, size.n_fft)


def window_samples(sr: float, window_s: float) -> int:
    """Samples past a note's start that :func:`measure_notes` reads (its level's last
    mean square, or its profile's window)."""
    size = _Sizes.at(sr, window_s)
    return max(size.window + size.rms, size.n_fft)


def tatum_notes(
    onset_frames: NDArray[np.int64],
    level_db: NDArray[np.float64],
    profile: NDArray[np.float64],
    tatum_frames: NDArray[np.int64],
    tatum_period: NDArray[np.float64],
) -> TatumNotes:
    """The notes (:func:`measure_notes`) on the tracked tatums: each tatum takes the note
    starting nearest it within ``NEAR_PERIOD`` of the local tatum period (``tatum_period``,
    frames, at each frame); both frame lists sorted, in the same frame indexing."""
    idx = _assign_kernel(
        np.ascontiguousarray(onset_frames, dtype=np.int64),
        np.ascontiguousarray(tatum_frames, dtype=np.int64),
        np.ascontiguousarray(tatum_period, dtype=np.float64),
    )
    has = idx >= 0
    level = np.full(idx.size, np.nan)
    rows = np.full((idx.size, N_PROFILE_BANDS), np.nan)
    level[has] = level_db[idx[has]]
    rows[has] = profile[idx[has]]
    return TatumNotes(contrast_db=_local_contrast_kernel(level), profile=rows)
