"""Metronome bleed: clicks on the known target grid that must not count as notes.

A metronome leaking from headphones into the microphone adds the same short sound at every
grid line. Its per-band flux is what every click position has in common: a low percentile
over all click positions (a student rests or drifts off the grid often enough that the
percentile sees the click alone) minus the same percentile at random off-grid positions.
An onset on a click is the student's only when its flux still passes the threshold after
that template is subtracted.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from audio_engine.dsp.onsets import _max_filter_bands_kernel

CLICK_PERCENTILE = 10.0
CLICK_WINDOW_FRAMES = 2
TYPICAL_PCT = 25.0


def band_flux(S: NDArray[np.float32], lag: int, max_bands: int) -> NDArray[np.float32]:
    """Per-band positive SuperFlux, shape (n_frames, n_bands)."""
    ref = _max_filter_bands_kernel(np.ascontiguousarray(S), max_bands) if max_bands > 0 else S
    prev = np.concatenate([np.zeros((lag, S.shape[1]), dtype=np.float32), ref[:-lag]])
    flux: NDArray[np.float32] = np.maximum(S - prev, np.float32(0.0))
    return flux


def _window_max(F: NDArray[np.float32], frames: NDArray[np.int64], w: int) -> NDArray[np.float32]:
    n = F.shape[0]
    idx = np.clip(frames[:, None] + np.arange(-w, w + 1)[None, :], 0, n - 1)
    out: NDArray[np.float32] = F[idx].max(axis=1)
    return out


def click_template(
    F: NDArray[np.float32], click_frames: NDArray[np.int64], period_frames: float
) -> NDArray[np.float32]:
    """Per-band flux common to every click position, above the off-grid level."""
    on = np.percentile(_window_max(F, click_frames, CLICK_WINDOW_FRAMES), CLICK_PERCENTILE, axis=0)
    off_frames = np.clip((click_frames + 0.4 * period_frames).astype(np.int64), 0, F.shape[0] - 1)
    off = np.percentile(_window_max(F, off_frames, CLICK_WINDOW_FRAMES), CLICK_PERCENTILE, axis=0)
    template: NDArray[np.float32] = np.maximum(on - off, 0.0).astype(np.float32)
    return template


def remove_metronome_clicks(
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
) -> tuple[NDArray[np.float64], int]:
    """Drop onsets that are only a metronome click on the target grid.

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
        The metronome's tempo (BPM) and first click (seconds).
    delta : float
        The peak-picking threshold: a residual below it is not a note.
    offset_s : float
        The detector's constant time offset (seconds) added to onset times.

    Returns
    -------
    notes_s : ndarray
        The onsets that are the student's.
    n_removed : int
        How many onsets were taken as metronome clicks.
    """
    n_frames = S.shape[0]
    period_frames = 60.0 / target_bpm * fps
    first = grid_start_s - np.floor(grid_start_s * fps / period_frames) * period_frames / fps
    click_frames = np.round(
        (first + np.arange(0, n_frames / period_frames + 1) * period_frames / fps) * fps
    ).astype(np.int64)
    click_frames = click_frames[(click_frames >= 0) & (click_frames < n_frames)]
    if onsets_s.size == 0 or click_frames.size < 8:
        return onsets_s, 0
    F = band_flux(S, lag_frames, max_bands)
    template = click_template(F, click_frames, period_frames)
    if float(template.sum()) < 0.25 * delta:
        return onsets_s, 0
    # what a click typically adds, and what is left at a click position after removing it
    typical = np.percentile(_window_max(F, click_frames, CLICK_WINDOW_FRAMES), TYPICAL_PCT, axis=0)
    typical = np.maximum(typical, template)

    def residual(frame: int) -> float:
        lo, hi = max(0, frame - 1), min(n_frames, frame + 2)
        return float(np.maximum(F[lo:hi] - typical[None, :], 0.0).sum(axis=1).max())

    floor = float(np.percentile([residual(int(f)) for f in click_frames], 25))
    threshold = delta + 2.0 * floor
    onset_frames = np.round((onsets_s - offset_s) * fps).astype(np.int64)
    keep = np.ones(onsets_s.size, dtype=bool)
    for i, f in enumerate(onset_frames):
        if np.min(np.abs(click_frames - f)) > CLICK_WINDOW_FRAMES:
            continue
        if residual(int(f)) < threshold:
            keep[i] = False
    return onsets_s[keep], int((~keep).sum())


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
    while players jitter by several milliseconds, drift, and rest. Returns the period and a
    click time in seconds, or None.
    """
    if onsets_s.size < min_clicks:
        return None
    diffs = (onsets_s[None, :] - onsets_s[:, None]).ravel()
    diffs = diffs[(diffs >= 0.2) & (diffs <= 2.1)]
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
        phases = np.mod(onsets_s, period)
        d = np.abs(phases[:, None] - phases[None, :])
        count = (np.minimum(d, period - d) <= tol_s).sum(axis=1)
        i = int(np.argmax(count))
        if best is None or count[i] > best[0]:
            best = (int(count[i]), period, float(onsets_s[i]))
    if best is None:
        return None
    _, period, phase = best
    n, coverage = _grid_fit(onsets_s, period, phase, tol_s)
    if n < min_clicks or coverage < min_coverage:
        return None
    for k in (4, 3, 2):  # the clicks may be a subdivision of the period found
        if period / k >= 0.2:
            nk, ck = _grid_fit(onsets_s, period / k, phase, tol_s)
            if nk >= min_clicks and ck >= min_coverage:
                return period / k, phase
    return period, phase


def remove_blind_clicks(
    S: NDArray[np.float32],
    onsets_s: NDArray[np.float64],
    fps: float,
    *,
    lag_frames: int,
    max_bands: int,
    delta: float,
    offset_s: float = 0.0,
) -> tuple[NDArray[np.float64], int]:
    """Drop metronome clicks found without knowing the target (see :func:`find_click_grid`)."""
    grid = find_click_grid(onsets_s)
    if grid is None:
        return onsets_s, 0
    period, phase = grid
    first = phase - np.floor(phase / period) * period
    return remove_metronome_clicks(
        S,
        onsets_s,
        fps,
        lag_frames=lag_frames,
        max_bands=max_bands,
        target_bpm=60.0 / period,
        grid_start_s=first,
        delta=delta,
        offset_s=offset_s,
    )
