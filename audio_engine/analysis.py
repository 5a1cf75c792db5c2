"""Offline (whole-recording) analysis: onsets, tempo, beats and the practice timing report."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from audio_engine.dsp.accents import measure_notes, tatum_notes
from audio_engine.dsp.beats import track_beats, trim_weak
from audio_engine.dsp.meter import group_tatums
from audio_engine.dsp.metronome import blind_clicks, metronome_clicks, on_target_grid
from audio_engine.dsp.onsets import max_filter_bands, onset_strength, sustained_strength
from audio_engine.dsp.peaks import (
    distinct_peaks,
    held_peaks,
    pick_frames,
    pick_peaks,
    rise_frames,
    rise_starts,
    slow_frames,
    slow_peaks,
    swell_frames,
)
from audio_engine.dsp.probe import probed_peaks
from audio_engine.dsp.signal import PreparedSignal, check_sr, decimation_factor, prepare_signal
from audio_engine.dsp.spectrogram import (
    frame_geometry,
    head_frames,
    log_spectrogram,
    tail_frames,
)
from audio_engine.dsp.tempo import estimate_tatum, local_period, subdivided_tatum, tempogram
from audio_engine.errors import ParameterError
from audio_engine.params import AnalysisParams, OnsetParams
from audio_engine.result import AnalysisResult

if TYPE_CHECKING:
    from audio_engine.io import ProgressCallback

MIN_ONSETS_FOR_TEMPO = 4


def check_target(
    target_bpm: float | None, grid_start_s: float, subdivision: int | None, latency_ms: float
) -> None:
    """Validate the timing arguments of :func:`analyze` (ParameterError naming the value)."""
    if target_bpm is not None and not (math.isfinite(target_bpm) and 20.0 <= target_bpm <= 400.0):
        raise ParameterError(f"target_bpm must be within 20-400 BPM, got {target_bpm!r}")
    if not math.isfinite(grid_start_s) or grid_start_s < 0:
        raise ParameterError(f"grid_start_s must be a finite number >= 0, got {grid_start_s!r}")
    if subdivision is not None and subdivision not in (1, 2, 3, 4):
        raise ParameterError(f"subdivision must be 1, 2, 3 or 4, got {subdivision!r}")
    if not math.isfinite(latency_ms) or abs(latency_ms) > 1000.0:
        raise ParameterError(f"latency_ms must be within ±1000 ms, got {latency_ms!r}")


def _snap_to_onsets(
    beats_s: NDArray[np.float64],
    peaks_s: NDArray[np.float64],
    max_s: float,
    *,
    onsets_s: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Move each beat to the start of the note whose onset-strength peak lies within
    ``max_s`` seconds of it (``peaks_s[i]`` is the peak of the note starting at
    ``onsets_s[i]``): a beat tracked on the strength sits at the attack's steepest point,
    which a slow attack reaches well after the note starts."""
    if beats_s.size == 0 or peaks_s.size == 0:
        return beats_s
    idx = np.clip(np.searchsorted(peaks_s, beats_s), 1, max(1, peaks_s.size - 1))
    if peaks_s.size == 1:
        near = np.zeros(beats_s.shape, dtype=np.int64)
    else:
        near = np.where(beats_s - peaks_s[idx - 1] < peaks_s[idx] - beats_s, idx - 1, idx)
    return np.where(np.abs(peaks_s[near] - beats_s) <= max_s, onsets_s[near], beats_s)


def tempo_curve_from_beats(beats_s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows of (time_s, bpm): 60 / inter-beat interval at each interval's midpoint,
    median-smoothed over three intervals."""
    if beats_s.size < 3:
        return np.zeros((0, 2))
    ibi = np.diff(beats_s)
    mid = beats_s[:-1] + ibi / 2
    if ibi.size >= 3:
        padded = np.concatenate([ibi[:1], ibi, ibi[-1:]])
        ibi = np.median(np.lib.stride_tricks.sliding_window_view(padded, 3), axis=1)
    return np.column_stack([mid, 60.0 / ibi])


def _plain_peaks(
    odf: NDArray[np.float64], held: NDArray[np.float64], o: OnsetParams, fps: float
) -> NDArray[np.float64]:
    """Onset peaks (fractional frames) with the frames' own look-ahead and the hold gate."""
    peaks = pick_peaks(odf, delta=o.delta, **pick_frames(o, fps)._asdict())
    if o.hold_ratio > 0:
        peaks = peaks[held_peaks(odf, held, peaks, o.hold_ratio)]
    return peaks


def _with_slow_peaks(
    S: NDArray[np.float32],
    ref: NDArray[np.float32],
    odf: NDArray[np.float64],
    held: NDArray[np.float64],
    peaks: NDArray[np.float64],
    o: OnsetParams,
    fps: float,
    n_valid: int,
    *,
    head: int,
) -> NDArray[np.float64]:
    """``peaks`` with the notes only the slow detector finds (:func:`slow_peaks`) past the
    hold gate over ``report_hold_frames`` (``held`` is the main detector's held strength),
    sorted; ``n_valid`` frames do not reach past the end of the signal, the slow flux of the
    first ``head`` frames sees its start (:func:`head_frames`)."""
    odf_slow = onset_strength(S, lag_frames=o.slow_lag_frames, max_bands=o.max_bands, ref=ref)
    odf_slow[n_valid:] = 0.0
    post, clear = slow_frames(o, fps)
    windows = pick_frames(o, fps)
    slow = slow_peaks(
        odf,
        odf_slow,
        np.ceil(peaks - 0.5).astype(np.int64),  # the frames picked (a refined peak is within
        # +-0.5 of its frame, and +0.5 only when the frame after it is as high)
        pre_max=windows.pre_max,
        pre_avg=windows.pre_avg,
        post=post,
        delta=o.slow_delta,
        combine=windows.combine,
        clear=clear,
    )
    if o.hold_ratio > 0:
        if o.report_hold_frames != (1 if o.probe_s is not None else o.hold_frames):
            held = sustained_strength(S, lag_frames=o.lag_frames, max_bands=o.max_bands,
                                      hold_frames=o.report_hold_frames, ref=ref)
        slow = slow[held_peaks(odf, held, slow, o.hold_ratio)]
    slow = slow[_after_head(slow, head)]
    return np.sort(np.concatenate([peaks, slow]))


def _after_head(peaks: NDArray[np.float64], head: int) -> NDArray[np.bool_]:
    """Which peaks (fractional frames) lie at or after frame ``head``, by the frame each was
    picked at (a refined peak lies within -0.5 and +0.5 of it), as the stream counts them."""
    mask: NDArray[np.bool_] = np.ceil(peaks - 0.5) >= head
    return mask


def analyze(
    samples: NDArray[np.generic],
    sr: float,
    *,
    target_bpm: float | None = None,
    grid_start_s: float = 0.0,
    subdivision: int | None = None,
    latency_ms: float = 0.0,
    params: AnalysisParams | None = None,
) -> AnalysisResult:
    """Analyse a whole recording: onsets, tempo, beats and, given a target, the timing report.

    Parameters
    ----------
    samples : ndarray, shape (n,) or (n, channels)
        int16, int32 or floating-point samples (floats in [-1, 1]).
    sr : float
        Sample rate in Hz, 8000-96000.
    target_bpm : float, optional
        The tempo the student practises at (20-400 BPM). It drives only the timing report:
        tempo, beats and onsets never depend on it.
    grid_start_s : float
        Time in seconds of the target grid's first line (the metronome's first click).
    subdivision : {1, 2, 3, 4}, optional
        Notes per beat of the played rhythm; inferred from the onsets when omitted.
    latency_ms : float
        Input latency in milliseconds subtracted from note times before measuring deviations.
    params : AnalysisParams, optional
        Analysis parameters; the defaults are the benchmarked ones.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    ParameterError
        On an invalid argument, sample rate, dtype, or NaN/infinite samples.
    """
    p = params or AnalysisParams()
    check_target(target_bpm, grid_start_s, subdivision, latency_ms)
    n_in = int(np.asarray(samples).shape[0]) if np.asarray(samples).ndim else 0
    y, work_sr = prepare_signal(samples, sr, target_sr=p.spectrogram.target_sr)
    return analyze_prepared(
        PreparedSignal(y, work_sr, int(sr), n_in),
        target_bpm=target_bpm,
        grid_start_s=grid_start_s,
        subdivision=subdivision,
        latency_ms=latency_ms,
        params=p,
    )


def analyze_file(
    path: str | os.PathLike[str],
    *,
    target_bpm: float | None = None,
    grid_start_s: float = 0.0,
    subdivision: int | None = None,
    latency_ms: float = 0.0,
    params: AnalysisParams | None = None,
    progress: ProgressCallback | None = None,
) -> AnalysisResult:
    """Analyse an audio or video file: :func:`analyze` of its samples, decoded straight to
    the working rate (:func:`audio_engine.io.load_prepared`: the file is never held at its
    own rate, so a long recording takes half the memory or less).

    Parameters
    ----------
    path : str or os.PathLike
        The file (see :func:`audio_engine.io.load_audio`).
    target_bpm, grid_start_s, subdivision, latency_ms, params
        As for :func:`analyze`.
    progress : callable, optional
        ``progress(decoded_s, total_s)`` while decoding.

    Raises
    ------
    AudioDecodeError
        The file cannot be read or decoded.
    ParameterError
        On an invalid argument (checked before decoding), sample rate, or NaN/infinite
        samples.
    """
    p = params or AnalysisParams()
    check_target(target_bpm, grid_start_s, subdivision, latency_ms)
    from audio_engine.io import load_prepared

    signal = load_prepared(path, target_sr=p.spectrogram.target_sr, progress=progress)
    return analyze_prepared(
        signal,
        target_bpm=target_bpm,
        grid_start_s=grid_start_s,
        subdivision=subdivision,
        latency_ms=latency_ms,
        params=p,
    )


def analyze_prepared(
    signal: PreparedSignal,
    *,
    target_bpm: float | None = None,
    grid_start_s: float = 0.0,
    subdivision: int | None = None,
    latency_ms: float = 0.0,
    params: AnalysisParams | None = None,
) -> AnalysisResult:
    """:func:`analyze` of a recording already at the working rate (from
    :func:`audio_engine.dsp.signal.prepare_signal` or :func:`audio_engine.io.load_prepared`,
    with the ``target_sr`` of ``params``).

    Raises
    ------
    ParameterError
        On an invalid argument, or a signal prepared for another working rate.
    """
    p = params or AnalysisParams()
    check_target(target_bpm, grid_start_s, subdivision, latency_ms)
    sr = check_sr(signal.sr)
    work_sr = sr / decimation_factor(sr, p.spectrogram.target_sr)
    if signal.work_sr != work_sr:
        raise ParameterError(
            f"the signal was prepared at {signal.work_sr:g} Hz; these parameters work at "
            f"{work_sr:g} Hz (target_sr {p.spectrogram.target_sr})"
        )
    y = signal.y
    duration_s = signal.duration_s
    geom = frame_geometry(work_sr, p.spectrogram)
    fps = geom.fps
    S = log_spectrogram(y, geom, p.spectrogram)
    ref = max_filter_bands(S, p.onset.max_bands)
    odf = onset_strength(S, lag_frames=p.onset.lag_frames, max_bands=p.onset.max_bands, ref=ref)
    # frames reaching past the end see the cut, not an onset
    n_valid = tail_frames(y.shape[0], geom)
    odf[n_valid:] = 0.0

    o = p.onset
    held = sustained_strength(
        S,
        lag_frames=o.lag_frames,
        max_bands=o.max_bands,
        hold_frames=1 if o.probe_s is not None else o.hold_frames,
        ref=ref,
    )
    if o.probe_s is not None:
        peaks = probed_peaks(y, geom, p.spectrogram, o, S, ref, odf, held)
    else:
        peaks = _plain_peaks(odf, held, o, fps)
    # the recording's start is no note (the step from the zeros before it is the cut)
    peaks = peaks[_after_head(peaks, head_frames(geom, o.lag_frames))]
    if o.slow_lag_frames > 0:
        peaks = _with_slow_peaks(S, ref, odf, held, peaks, o, fps, n_valid,
                                 head=head_frames(geom, o.slow_lag_frames))
    # without the swells of an attack that peaked already; a slow attack starts well
    # before its steepest point, the peak
    peaks = peaks[distinct_peaks(odf, peaks, max_frames=swell_frames(o, fps),
                                 dip_ratio=o.swell_dip)]
    starts = rise_starts(odf, peaks, ratio=o.rise_ratio, max_frames=rise_frames(o, fps),
                         rebound=o.rise_rebound, lead_frames=o.rise_lead_s * fps)
    # metronome clicks are found at the peaks: their precise, machine-regular times
    peaks_s = np.clip(peaks / fps + o.offset_s, 0.0, duration_s)
    blind = blind_clicks(
        S,
        peaks_s,
        fps,
        lag_frames=o.lag_frames,
        max_bands=o.max_bands,
        delta=o.delta,
        offset_s=o.offset_s,
        ref=ref,
    )
    n_blind_clicks = int(blind.sum())
    blind_s = peaks_s[blind]
    peaks_s = peaks_s[~blind]
    onsets_s = np.clip(starts / fps + o.offset_s, 0.0, duration_s)[~blind]

    tempo_bpm: float | None = None
    confidence = 0.0
    beats_s = np.zeros(0)
    if onsets_s.size >= MIN_ONSETS_FOR_TEMPO:
        t = p.tempo
        win = max(16, round(t.window_s * fps))
        hop = max(1, round(t.hop_s * fps))
        max_lag = math.ceil(60.0 * fps / t.min_bpm * 2) + 2
        tg = tempogram(odf, win, hop, max_lag)
        acf = tg.mean(axis=0)
        tatum = estimate_tatum(acf, fps, t)
        if tatum is not None:
            tatum = subdivided_tatum(acf, tatum, fps, t)
            n = odf.shape[0]
            tatum_period = local_period(tg, tatum, n, win, hop, smooth=t.period_smooth)
            tatum_frames = track_beats(
                odf, tatum_period, tightness=p.beat.tightness, trim_ratio=0.0
            )
            note_frames = np.round(starts[~blind]).astype(np.int64)
            level_db, profile = measure_notes(
                y, work_sr, geom.hop_length, note_frames, window_s=t.level_window_s
            )
            notes = tatum_notes(note_frames, level_db, profile, tatum_frames, tatum_period)
            beat_frames, group = group_tatums(odf, tatum_frames, tatum_period,
                                              60.0 * fps / tatum, t, notes=notes,
                                              phase_switches=True)
            beat_frames = trim_weak(odf, beat_frames, tatum_period * group, p.beat.trim_ratio)
            beats_s = _snap_to_onsets(beat_frames / fps + o.offset_s, peaks_s, p.beat.snap_s,
                                      onsets_s=onsets_s)
            confidence = float(np.clip(np.interp(tatum * group, np.arange(acf.size), acf), 0, 1))
            if beats_s.size >= 4:
                tempo_bpm = float(60.0 / np.median(np.diff(beats_s)))
            else:
                tempo_bpm = 60.0 * fps / (tatum * group)
    curve = tempo_curve_from_beats(beats_s)

    timing = None
    if target_bpm is not None:
        from audio_engine.timing import timing_report

        # a bleeding click is recorded where a note played with it is: latency_ms after
        # its grid line, as the deviations take it
        click_start_s = grid_start_s + latency_ms / 1000.0
        if on_target_grid(blind_s - o.offset_s, target_bpm, click_start_s):
            # the blind pass found this metronome: judged again, the onsets left on its
            # lines are mostly notes played with it, too few clicks to learn it from
            clicks = np.zeros(onsets_s.shape[0], dtype=np.bool_)
        else:
            clicks = metronome_clicks(
                S,
                peaks_s,
                fps,
                lag_frames=p.onset.lag_frames,
                max_bands=p.onset.max_bands,
                target_bpm=target_bpm,
                grid_start_s=click_start_s,
                delta=p.onset.delta,
                offset_s=o.offset_s,
                ref=ref,
            )
        notes_s = onsets_s[~clicks]
        n_clicks = int(clicks.sum())
        timing = timing_report(
            notes_s,
            beats_s,
            duration_s,
            target_bpm=target_bpm,
            grid_start_s=grid_start_s,
            subdivision=subdivision,
            latency_ms=latency_ms,
            metronome_clicks_removed=n_blind_clicks + n_clicks,
        )
    return AnalysisResult(
        duration_s=duration_s,
        sr=sr,
        tempo_bpm=tempo_bpm,
        tempo_confidence=confidence,
        beats=beats_s,
        onsets=onsets_s,
        tempo_curve=curve,
        timing=timing,
    )
