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


def band_flux(S: NDArray[np.float32], lag: int, max_bands: int) -> NDArray[np.float32]:
    """Per-band positive SuperFlux, shape (n_frames, n_bands)."""
    ref = _max_filter_bands_kernel(np.ascontiguousarray(S), max_bands) if max_bands > 0 else S
    prev = np.concatenate([np.zeros((lag, S.shape[1]), dtype=np.float32), ref[:-lag]])
    return np.maximum(S - prev, 0.0)


def _window_max(F: NDArray[np.float32], frames: NDArray[np.int64], w: int) -> NDArray[np.float32]:
    n = F.shape[0]
    idx = np.clip(frames[:, None] + np.arange(-w, w + 1)[None, :], 0, n - 1)
    return F[idx].max(axis=1)


def click_template(
    F: NDArray[np.float32], click_frames: NDArray[np.int64], period_frames: float
) -> NDArray[np.float32]:
    """Per-band flux common to every click position, above the off-grid level."""
    on = np.percentile(_window_max(F, click_frames, CLICK_WINDOW_FRAMES), CLICK_PERCENTILE, axis=0)
    off_frames = np.clip(
        (click_frames + 0.4 * period_frames).astype(np.int64), 0, F.shape[0] - 1
    )
    off = np.percentile(_window_max(F, off_frames, CLICK_WINDOW_FRAMES), CLICK_PERCENTILE, axis=0)
    return np.maximum(on - off, 0.0).astype(np.float32)


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
    typical = np.median(_window_max(F, click_frames, CLICK_WINDOW_FRAMES), axis=0)
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

